//! Protocol events as JSON objects, one per line (`--events jsonl`), as `docs/EVENTS.md`
//! describes them.

use pcxses_core::controller::{ComputationId, DeviceId, MigrationFailure};
use pcxses_core::device::StopReason;
use pcxses_core::{Controller, ControllerEvent, DeviceEvent, Instant};
use serde_json::{json, Value};

/// Names devices and computations the way the configuration lists them, packed: one
/// string of every name and where each ends (a million devices cost their names' bytes and
/// four more each, not an allocation each).
pub struct Names {
    devices: Packed,
    computations: Packed,
}

/// Names in one string, each ending at its offset.
struct Packed {
    text: String,
    ends: Vec<u32>,
}

impl Packed {
    /// Packs `names` (a configuration's: their bytes together fit in a `u32`).
    fn new<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> Packed {
        let mut packed = Packed {
            text: String::new(),
            ends: Vec::with_capacity(names.len()),
        };
        for name in names {
            packed.text.push_str(name);
            packed.ends.push(packed.text.len() as u32);
        }
        packed.text.shrink_to_fit();
        packed
    }

    /// Name `i`, or `?` if there is none.
    fn get(&self, i: u32) -> &str {
        let i = i as usize;
        let Some(&end) = self.ends.get(i) else {
            return "?";
        };
        let start = i.checked_sub(1).map_or(0, |p| self.ends[p]);
        &self.text[start as usize..end as usize]
    }
}

impl Names {
    /// The names of the devices and computations `ac` was configured with, for events
    /// printed once it has moved into a driver.
    pub fn new(ac: &Controller) -> Names {
        let devices = (0..ac.device_count() as u32).map(|i| ac.device_name(DeviceId(i)));
        let computations =
            (0..ac.computation_count() as u32).map(|i| ac.computation_name(ComputationId(i)));
        Names {
            devices: Packed::new(devices),
            computations: Packed::new(computations),
        }
    }

    fn device(&self, i: u32) -> &str {
        self.devices.get(i)
    }

    fn computation(&self, i: u32) -> &str {
        self.computations.get(i)
    }
}

/// An instant as every event's `at_ms`: milliseconds since the program's epoch.
pub fn at_ms(at: Instant) -> f64 {
    at.as_micros() as f64 / 1000.0
}

fn failure(f: &MigrationFailure) -> String {
    match f {
        MigrationFailure::Refused(r) => format!("refused:{r:?}"),
        other => format!("{other:?}"),
    }
}

/// One AC event as JSON: `{"event":"device_failed","device":"…","at_ms":…}`.
pub fn controller_event(e: &ControllerEvent, n: &Names) -> Value {
    use ControllerEvent as E;
    match e {
        E::DeviceJoined {
            device,
            session,
            at,
        } => {
            json!({"event": "device_joined", "device": n.device(device.0), "session": session.to_string(), "at_ms": at_ms(*at)})
        }
        E::DeviceLeft { device, at } => {
            json!({"event": "device_left", "device": n.device(device.0), "at_ms": at_ms(*at)})
        }
        E::DeviceFailed {
            device,
            last_hello,
            at,
            ..
        } => json!({
            "event": "device_failed", "device": n.device(device.0), "last_hello_ms": at_ms(*last_hello), "at_ms": at_ms(*at)
        }),
        E::StateStored {
            computation,
            device,
            version,
            len,
            at,
        } => json!({
            "event": "state_stored", "computation": n.computation(computation.0), "device": n.device(device.0),
            "version": version, "bytes": len, "at_ms": at_ms(*at)
        }),
        E::ComputationStopped {
            computation,
            device,
            at,
        } => json!({
            "event": "computation_stopped", "computation": n.computation(computation.0), "device": n.device(device.0), "at_ms": at_ms(*at)
        }),
        E::MigrationStarted {
            computation,
            from,
            to,
            attempt,
            at,
        } => json!({
            "event": "migration_started", "computation": n.computation(computation.0), "from": n.device(from.0),
            "to": n.device(to.0), "attempt": attempt, "at_ms": at_ms(*at)
        }),
        E::MigrationCompleted {
            computation,
            from,
            to,
            detected_at,
            started_at,
            acked_at,
            stream_bytes,
        } => json!({
            "event": "migration_completed", "computation": n.computation(computation.0), "from": n.device(from.0),
            "to": n.device(to.0), "detected_ms": at_ms(*detected_at), "started_ms": at_ms(*started_at), "acked_ms": at_ms(*acked_at),
            "morph_ms": at_ms(*acked_at) - at_ms(*started_at), "stream_bytes": stream_bytes, "at_ms": at_ms(*acked_at)
        }),
        E::MigrationFailed {
            computation,
            to,
            reason,
            at,
        } => json!({
            "event": "migration_failed", "computation": n.computation(computation.0), "to": n.device(to.0),
            "reason": failure(reason), "at_ms": at_ms(*at)
        }),
        E::Quarantined {
            computation,
            reason,
            failures,
            at,
        } => json!({
            "event": "quarantined", "computation": n.computation(computation.0), "reason": reason.name(),
            "failures": failures, "at_ms": at_ms(*at)
        }),
        E::Orphaned {
            computation,
            reason,
            at,
        } => json!({
            "event": "orphaned", "computation": n.computation(computation.0), "reason": reason.name(), "at_ms": at_ms(*at)
        }),
        E::JournalFailed { at } => json!({"event": "journal_failed", "at_ms": at_ms(*at)}),
        E::Stalled { late, at } => json!({
            "event": "stalled", "late_ms": late.as_secs_f64() * 1000.0, "at_ms": at_ms(*at)
        }),
        other => json!({"event": "other", "debug": format!("{other:?}")}),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How a program prints its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EventFormat {
    /// One JSON object per line.
    Jsonl,
}

/// One device event as JSON. `state` is the state a `state_stored` event acknowledges, or
/// an install's LKGS: printed in hex, and as `count` when it is a counter's 8 bytes.
pub fn device_event(e: &DeviceEvent, state: Option<&[u8]>, at: Instant) -> Value {
    let at = at_ms(at);
    let count = state
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_le_bytes);
    let state = state.map(hex);
    match e {
        DeviceEvent::Joined {
            session,
            run,
            hello,
            dead,
            fence,
            mode,
            ..
        } => {
            let (hello, dead) = (hello.as_millis() as u64, dead.as_millis() as u64);
            let fence = fence.map(|f| f.as_millis() as u64);
            let mode = format!("{mode:?}").to_lowercase();
            json!({"event": "joined", "session": session.to_string(), "run": run, "hello_ms": hello, "dead_ms": dead, "fence_ms": fence, "mode": mode, "at_ms": at})
        }
        DeviceEvent::Rejected { reason } => {
            json!({"event": "rejected", "reason": format!("{reason:?}"), "at_ms": at})
        }
        DeviceEvent::StateStored {
            computation,
            version,
        } => {
            json!({"event": "state_stored", "computation": computation, "version": version, "count": count, "state": state, "at_ms": at})
        }
        DeviceEvent::Install(i) => json!({
            "event": "install", "computation": i.computation, "replaces": i.replaces, "count": count, "lkgs": state,
            "lkgs_bytes": i.lkgs().len(), "lkgs_version": i.lkgs_version, "code_bytes": i.objects.iter().map(|o| o.len as usize).sum::<usize>(), "at_ms": at
        }),
        DeviceEvent::MorphRefused { morph, reason } => {
            json!({"event": "morph_refused", "morph": morph, "reason": format!("{reason:?}"), "at_ms": at})
        }
        DeviceEvent::Stop {
            computation,
            reason,
        } => {
            let reason = match reason {
                StopReason::Replaced => "replaced",
                StopReason::Fenced => "fenced",
                StopReason::SessionLost => "session_lost",
                StopReason::Left => "left",
                StopReason::Dismissed => "dismissed",
                StopReason::Cancelled => "cancelled",
                _ => "other",
            };
            json!({"event": "stop", "computation": computation, "reason": reason, "at_ms": at})
        }
        DeviceEvent::Left => json!({"event": "left", "at_ms": at}),
        other => json!({"event": "other", "debug": format!("{other:?}"), "at_ms": at}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_names_are_found_by_index_and_an_unknown_index_is_a_question_mark() {
        let packed = Packed::new(["alpha", "", "gamma"].into_iter());
        let names: Vec<&str> = (0..4).map(|i| packed.get(i)).collect();
        assert_eq!(names, ["alpha", "", "gamma", "?"]);
        assert_eq!(Packed::new([].into_iter()).get(0), "?");
    }
}
