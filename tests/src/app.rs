//! The application a simulated device runs: counters whose state identifies itself.

use std::collections::BTreeMap;

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

/// The computations one device runs, each a counter.
#[derive(Clone, Debug, Default)]
pub struct App {
    /// Running computations and their counts.
    pub running: BTreeMap<String, u64>,
    /// Counts this process remembers of computations it stopped (lost on a crash).
    pub memory: BTreeMap<String, u64>,
}

impl App {
    /// Starts `name` from the count this process remembers, or zero.
    pub fn start(&mut self, name: &str) {
        let count = self.memory.get(name).copied().unwrap_or(0);
        self.running.insert(name.into(), count);
    }

    /// Starts `name` from a migrated LKGS.
    pub fn restore(&mut self, name: &str, lkgs: &[u8]) {
        self.running.insert(name.into(), decode_count(lkgs));
    }

    /// Stops `name`; returns whether it was running.
    pub fn stop(&mut self, name: &str) -> bool {
        match self.running.remove(name) {
            Some(count) => {
                self.memory.insert(name.into(), count);
                true
            }
            None => false,
        }
    }
}
