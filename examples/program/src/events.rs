//! Protocol events as JSON objects, one per line (`--events jsonl`), as `docs/EVENTS.md`
//! describes them.

use pcxses_core::controller::{ControllerConfig, MigrationFailure};
use pcxses_core::device::StopReason;
use pcxses_core::{ControllerEvent, DeviceEvent, Instant};
use serde_json::{json, Value};

/// Names devices and computations the way the configuration lists them.
pub struct Names {
    devices: NameList,
    computations: NameList,
}

impl Names {
    /// The names of a controller configuration.
    pub fn new(config: &ControllerConfig) -> Names {
        Names {
            devices: NameList::new(config.devices.iter().map(|d| d.name.as_str())),
            computations: NameList::new(config.computations.iter().map(|c| c.name.as_str())),
        }
    }

    fn device(&self, i: u32) -> &str {
        self.devices.get(i).unwrap_or("?")
    }

    fn computation(&self, i: u32) -> &str {
        self.computations.get(i).unwrap_or("?")
    }
}

/// Names in one text, each found by where it ends: two allocations for a million names.
struct NameList {
    text: String,
    ends: Vec<usize>,
}

impl NameList {
    fn new<'n>(names: impl Iterator<Item = &'n str> + Clone) -> NameList {
        let mut list = NameList {
            text: String::with_capacity(names.clone().map(str::len).sum()),
            ends: Vec::with_capacity(names.clone().count()),
        };
        for name in names {
            list.text.push_str(name);
            list.ends.push(list.text.len());
        }
        list
    }

    fn get(&self, i: u32) -> Option<&str> {
        let i = i as usize;
        let start = match i {
            0 => 0,
            _ => *self.ends.get(i - 1)?,
        };
        self.text.get(start..*self.ends.get(i)?)
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
            "lkgs_bytes": i.lkgs.len(), "code_bytes": i.objects.iter().map(|o| o.bytes.len()).sum::<usize>(), "at_ms": at
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
    use pcxses_core::controller::{ComputationSpec, DeviceSpec};

    #[test]
    fn names_are_found_by_their_index() {
        let config = ControllerConfig::new(
            1,
            vec![DeviceSpec::new("alpha", &[]), DeviceSpec::new("b", &[])],
            vec![ComputationSpec::new("c0", "x")],
        );
        let names = Names::new(&config);
        assert_eq!((names.device(0), names.device(1)), ("alpha", "b"));
        assert_eq!((names.device(2), names.computation(0)), ("?", "c0"));
        assert_eq!(names.computation(1), "?");
    }
}
