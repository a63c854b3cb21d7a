//! The invariants checked after every step, from what the machines show of themselves:
//! no view of the network beyond the bottles, no knowledge of what was meant.

use pcxses_core::controller::{ComputationId, ControllerConfig, DeviceId, Placement};
use pcxses_core::{Controller, Device, SessionId, Stats, MAX_HOSTED, MAX_NAME_LEN};

/// A machine's counters without those a refused bottle moves: `received` and the refusal
/// counters.
pub fn kept_counters(s: &Stats) -> Stats {
    Stats {
        received: 0,
        malformed: 0,
        bad_version: 0,
        unknown_session: 0,
        replaced: 0,
        unknown_device: 0,
        unauthorized: 0,
        out_of_phase: 0,
        bad_chunk: 0,
        unauthenticated: 0,
        replayed: 0,
        wrong_link: 0,
        challenged: 0,
        // Counts the refused bottle's answer held back by the rate limits: part of the
        // refusal, as its own counter is.
        unanswered: 0,
        ..*s
    }
}

/// The AC's refusals: its rejections, and the plain GOOD_MORNINGs of keyed devices it
/// answered with a CHALLENGE but did not accept.
pub fn refusals(s: &Stats) -> u64 {
    s.rejected() + s.challenged
}

/// What a refused bottle must leave as it was at the AC.
#[derive(Debug, PartialEq, Eq)]
pub struct AcPrint {
    sessions: Vec<Option<SessionId>>,
    placements: Vec<Option<Placement>>,
    lkgs: Vec<Option<(Vec<u8>, u32)>>,
    counters: Stats,
    /// Empty when the bottle is authentic: see [`AcPrint::of`].
    snapshot: Vec<u8>,
}

impl AcPrint {
    /// The AC's print now. Of a bottle sealed with its session's key (`authentic`), the AC
    /// answers a refusal sealed too (REJECT `Replaced` to a session it just ended), which
    /// takes the session's next send counter and records the bottle's counter: only then
    /// may the snapshot change, and only there; what the AC shows of its sessions,
    /// placements and LKGS may not.
    pub fn of(ac: &Controller, authentic: bool) -> AcPrint {
        let devices = (0..ac.device_count() as u32).map(DeviceId);
        let comps = (0..ac.computation_count() as u32).map(ComputationId);
        AcPrint {
            sessions: devices.map(|d| ac.session_of(d)).collect(),
            placements: comps.clone().map(|c| ac.placement(c)).collect(),
            lkgs: comps
                .map(|c| ac.lkgs(c).map(|(b, v)| (b.to_vec(), v)))
                .collect(),
            counters: kept_counters(ac.stats()),
            snapshot: if authentic { Vec::new() } else { ac.snapshot() },
        }
    }
}

/// What a refused bottle must leave as it was at a device.
#[derive(Debug, PartialEq, Eq)]
pub struct DevicePrint {
    session: Option<SessionId>,
    running: Vec<String>,
    counters: Stats,
}

impl DevicePrint {
    /// The device's print now.
    pub fn of(d: &Device) -> DevicePrint {
        DevicePrint {
            session: d.session(),
            running: d.running().map(String::from).collect(),
            counters: kept_counters(d.stats()),
        }
    }
}

/// The answer to one bottle: refused ones leave the print and every counter but one refusal
/// counter as they were and tell the application nothing; accepted ones move the refusal
/// counters only for what they carry that is judged on its own (`riders`, see
/// [`crate::forge::riders`]).
pub fn check_answer<P: PartialEq + std::fmt::Debug>(
    who: &str,
    refused: bool,
    before: (&P, u64),
    after: (&P, u64),
    events: usize,
    riders: u64,
) -> Result<(), String> {
    let (print, rejected) = before;
    let (print_after, rejected_after) = after;
    if refused {
        if rejected_after != rejected + 1 {
            return Err(format!(
                "{who}: a refused bottle moved the refusal counters from {rejected} to {rejected_after}"
            ));
        }
        if print_after != print {
            return Err(format!(
                "{who}: a refused bottle changed the state: {print:?} became {print_after:?}"
            ));
        }
        if events != 0 {
            return Err(format!("{who}: a refused bottle raised {events} events"));
        }
    } else if rejected_after < rejected || rejected_after - rejected > riders {
        return Err(format!(
            "{who}: an accepted bottle moved the refusal counters from {rejected} to {rejected_after}"
        ));
    }
    Ok(())
}

/// Entries a computation's recovery may remember of failed targets; generous, since the
/// protocol bounds them by far less.
const TRIED: usize = 64;

/// The most bytes the AC's snapshot may take for `config` with the LKGS it holds now (each
/// at most the state limit): every name, every session at full size, every recovery with a
/// full list of tried targets. Anything beyond grew from what peers sent.
pub fn check_snapshot_bound(ac: &Controller, config: &ControllerConfig) -> Result<(), String> {
    const INT: usize = 10; // a varint
    const NAME: usize = INT + MAX_NAME_LEN;
    let session = 16 * INT + 8 + MAX_HOSTED * (INT + NAME);
    let auth = 2 * INT + 32 + 4 * INT;
    let device = NAME + 4 * INT + session + auth;
    let place = NAME + 4 * INT + TRIED * INT + (3 * INT + NAME);
    let comp = NAME + INT + 6 * INT + place;
    let mut bound = 64 + config.devices.len() * device + config.computations.len() * comp;
    for c in 0..ac.computation_count() as u32 {
        let lkgs = ac.lkgs(ComputationId(c)).map_or(0, |(b, _)| b.len());
        if lkgs > config.limits.max_state as usize {
            return Err(format!("the AC holds an LKGS of {lkgs} bytes"));
        }
        bound += lkgs;
    }
    let len = ac.snapshot().len();
    if len > bound {
        return Err(format!(
            "the AC's snapshot grew to {len} bytes, over {bound}"
        ));
    }
    Ok(())
}

/// At most one live device runs each computation: with fencing, a device stops before the
/// AC moves its computations, and nothing else starts one. A device runs only configured
/// computations, each once.
pub fn check_one_copy<'a>(
    devices: impl Iterator<Item = &'a Device> + Clone,
    computations: &[String],
) -> Result<(), String> {
    for d in devices.clone() {
        let mut running: Vec<&str> = d.running().collect();
        if let Some(c) = running
            .iter()
            .find(|&&c| !computations.iter().any(|k| k == c))
        {
            return Err(format!("{} runs unknown computation {c:?}", d.name()));
        }
        running.sort_unstable();
        if let Some(w) = running.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("{} runs {} twice", d.name(), w[0]));
        }
    }
    for c in computations {
        let hosts: Vec<&str> = devices
            .clone()
            .filter(|d| d.session().is_some() && d.running().any(|r| r == c))
            .map(Device::name)
            .collect();
        if hosts.len() > 1 {
            return Err(format!("{c} runs on {hosts:?} at once"));
        }
    }
    Ok(())
}

/// Every LKGS the AC holds is a state some device's application set for that computation
/// (or none yet).
pub fn check_lkgs(ac: &Controller, states: &[Vec<Vec<u8>>]) -> Result<(), String> {
    for (c, set) in states.iter().enumerate() {
        let id = ComputationId(c as u32);
        let Some((lkgs, _)) = ac.lkgs(id) else {
            return Err(format!("the AC lost computation {c}"));
        };
        if !lkgs.is_empty() && !set.iter().any(|s| s == lkgs) {
            return Err(format!(
                "the AC holds an LKGS of {} ({} bytes) that no device set",
                ac.computation_name(id),
                lkgs.len()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_that_changes_the_print_or_raises_an_event_is_reported() {
        let (a, b) = (1u8, 2u8);
        assert!(check_answer("x", true, (&a, 5), (&a, 6), 0, 0).is_ok());
        assert!(check_answer("x", true, (&a, 5), (&b, 6), 0, 0).is_err());
        assert!(check_answer("x", true, (&a, 5), (&a, 5), 0, 0).is_err());
        assert!(check_answer("x", true, (&a, 5), (&a, 7), 0, 1).is_err());
        assert!(check_answer("x", true, (&a, 5), (&a, 6), 1, 0).is_err());
        assert!(check_answer("x", false, (&a, 5), (&b, 5), 3, 0).is_ok());
        assert!(check_answer("x", false, (&a, 5), (&b, 6), 0, 0).is_err());
        assert!(check_answer("x", false, (&a, 5), (&b, 6), 0, 1).is_ok());
        assert!(check_answer("x", false, (&a, 5), (&b, 7), 0, 1).is_err());
    }

    #[test]
    fn only_the_refusal_counters_are_left_out_of_the_print() {
        let mut s = Stats {
            received: 1,
            malformed: 1,
            replayed: 1,
            ..Stats::default()
        };
        assert_eq!(kept_counters(&s), Stats::default());
        s.duplicate = 1;
        assert_ne!(kept_counters(&s), Stats::default());
    }
}
