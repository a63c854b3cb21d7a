//! The application a simulated device runs: counters whose state identifies itself, each
//! stepped on the application's own timer.
//!
//! A real device restarting a computation has nothing but what the AC hands it: a
//! computation named in `Joined { run }` starts from its initial state (count 0), one
//! installed by MORPH from the LKGS that came with it. Before each step the application
//! checks the device's fence lease (`Device::lease_until`) with the time of the step and
//! skips the step when the lease does not cover it.

use std::collections::BTreeMap;

use pcxses_core::Instant;

/// Encodes a counter's state: the count, then a padding pattern derived from the name and
/// the count, up to `size` bytes. Any corruption or mix-up changes the bytes.
pub fn encode_state(name: &str, count: u64, size: usize) -> Vec<u8> {
    let mut out = count.to_le_bytes().to_vec();
    let seed = name
        .bytes()
        .fold(count, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    while out.len() < size.max(8) {
        out.push((seed.wrapping_add(out.len() as u64) % 251) as u8);
    }
    out
}

/// The count in a state made by [`encode_state`] (zero for the empty state).
pub fn decode_count(state: &[u8]) -> u64 {
    state
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// A deliberate bug in the application, to show that the checker catches it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AppFault {
    /// A correct application.
    #[default]
    None,
    /// Steps its computations without checking the fence lease.
    IgnoresLease,
    /// Starts an installed computation from its initial state instead of its LKGS.
    IgnoresLkgs,
}

/// The computations one device runs, each a counter.
#[derive(Clone, Debug, Default)]
pub struct App {
    /// Running computations and their counts.
    pub running: BTreeMap<String, u64>,
    /// How this application misbehaves, if at all.
    pub fault: AppFault,
}

impl App {
    /// An application with nothing running.
    pub fn new(fault: AppFault) -> App {
        App {
            running: BTreeMap::new(),
            fault,
        }
    }

    /// Starts `name` from its initial state, as `Joined { run }` asks; returns the count it
    /// starts from (zero).
    pub fn start(&mut self, name: &str) -> u64 {
        self.running.insert(name.into(), 0);
        0
    }

    /// Starts `name` from a migrated LKGS; returns the count it starts from.
    pub fn restore(&mut self, name: &str, lkgs: &[u8]) -> u64 {
        let count = match self.fault {
            AppFault::IgnoresLkgs => 0,
            _ => decode_count(lkgs),
        };
        self.running.insert(name.into(), count);
        count
    }

    /// Stops `name`; returns whether it was running.
    pub fn stop(&mut self, name: &str) -> bool {
        self.running.remove(name).is_some()
    }
}

/// Whether an application with `fault` steps a computation at `now`, given the device's
/// `lease_until()` read just before: a correct one only strictly before the end of the
/// lease.
pub fn may_step(fault: AppFault, now: Instant, lease_until: Option<Instant>) -> bool {
    fault == AppFault::IgnoresLease || lease_until.is_some_and(|t| now < t)
}
