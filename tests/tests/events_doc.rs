//! `docs/EVENTS.md` describes every event the AC and the device print: every event of the
//! protocol core as the programs render it, every kind their sources print, and nothing
//! they do not print. (The end-to-end suites check every line the programs print as
//! well: see `Proc::spawn`.)

use std::path::Path;

use pcxses_core::controller::{
    ComputationId, ComputationSpec, ControllerConfig, DeviceId, DeviceSpec, MigrationFailure,
    OrphanReason, QuarantineReason,
};
use pcxses_core::device::{Install, InstallId, InstalledObject, StopReason};
use pcxses_core::wire::{MorphFailReason, RejectReason, StateMode};
use pcxses_core::{
    Controller, ControllerEvent, DeviceEvent, Instant, MemoryRepository, Name, SessionId,
};
use pcxses_program::events::{controller_event, device_event, Names};
use pcxses_tests::events_doc::{Catalogue, Program};
use serde_json::{json, Value};

const AT: Instant = Instant::from_micros(1_234_567);

fn names() -> Names {
    let devices = vec![
        DeviceSpec::new("alpha", &["counter"]),
        DeviceSpec::new("beta", &[]),
    ];
    let computations = vec![ComputationSpec::new("counter", "counter.bin")];
    let config = ControllerConfig::new(7, devices, computations);
    let ac = Controller::new(config, MemoryRepository::default(), AT).unwrap();
    Names::new(&ac)
}

/// One of every event of the controller, each reason of each.
fn controller_events() -> Vec<ControllerEvent> {
    let (c, a, b) = (ComputationId(0), DeviceId(0), DeviceId(1));
    let mut events = vec![
        ControllerEvent::DeviceJoined {
            device: a,
            session: SessionId(0x1234),
            at: AT,
        },
        ControllerEvent::DeviceLeft { device: a, at: AT },
        ControllerEvent::DeviceFailed {
            device: a,
            session: SessionId(0x1234),
            last_hello: Instant::from_millis(1),
            at: AT,
        },
        ControllerEvent::StateStored {
            computation: c,
            device: a,
            version: 3,
            len: 8,
            at: AT,
        },
        ControllerEvent::ComputationStopped {
            computation: c,
            device: a,
            at: AT,
        },
        ControllerEvent::MigrationStarted {
            computation: c,
            from: a,
            to: b,
            attempt: 1,
            at: AT,
        },
        ControllerEvent::MigrationCompleted {
            computation: c,
            from: a,
            to: b,
            detected_at: Instant::from_millis(1),
            started_at: Instant::from_millis(2),
            acked_at: AT,
            stream_bytes: 4096,
        },
        ControllerEvent::JournalFailed { at: AT },
        ControllerEvent::Stalled {
            late: core::time::Duration::from_millis(250),
            at: AT,
        },
    ];
    let failures = [
        MigrationFailure::Refused(MorphFailReason::BadSignature),
        MigrationFailure::TimedOut,
        MigrationFailure::TargetDied,
        MigrationFailure::TargetLeft,
        MigrationFailure::DiedAfterMigration,
        MigrationFailure::DiedInstalling,
    ];
    events.extend(
        failures
            .into_iter()
            .map(|reason| ControllerEvent::MigrationFailed {
                computation: c,
                to: b,
                reason,
                at: AT,
            }),
    );
    let quarantines = [
        QuarantineReason::Failures,
        QuarantineReason::MissingObject,
        QuarantineReason::TooLarge,
    ];
    events.extend(
        quarantines
            .into_iter()
            .map(|reason| ControllerEvent::Quarantined {
                computation: c,
                reason,
                failures: 3,
                at: AT,
            }),
    );
    let orphans = [
        OrphanReason::NoCapableDevice,
        OrphanReason::NoAuthenticatedDevice,
        OrphanReason::PolicyDeclined,
    ];
    events.extend(orphans.into_iter().map(|reason| ControllerEvent::Orphaned {
        computation: c,
        reason,
        at: AT,
    }));
    events
}

fn name(name: &str) -> Name {
    Name::try_from(name).expect("a short name")
}

/// One of every event of the device agent, each reason of each, with the state the
/// program prints beside it.
fn device_events() -> Vec<(DeviceEvent, Option<Vec<u8>>)> {
    let joined = |fence| DeviceEvent::Joined {
        session: SessionId(0x1234),
        run: vec![name("counter")],
        hello: core::time::Duration::from_millis(100),
        dead: core::time::Duration::from_millis(400),
        fence,
        mode: StateMode::InHello,
    };
    let install = DeviceEvent::Install(Box::new(Install {
        id: InstallId(1),
        computation: name("counter"),
        replaces: name("alpha"),
        sequence: 9,
        objects: vec![InstalledObject {
            id: name("counter.bin"),
            len: 64,
            invoke: true,
        }],
        stream: [&[0; 64][..], &41u64.to_le_bytes()].concat(),
        lkgs_version: 3,
    }));
    let stored = DeviceEvent::StateStored {
        computation: name("counter"),
        version: 3,
    };
    let mut events = vec![
        (joined(Some(core::time::Duration::from_millis(300))), None),
        (joined(None), None),
        (stored.clone(), Some(41u64.to_le_bytes().to_vec())),
        (stored, None),
        (install, Some(41u64.to_le_bytes().to_vec())),
        (
            DeviceEvent::MorphRefused {
                morph: 2,
                reason: MorphFailReason::StaleSequence,
            },
            None,
        ),
        (DeviceEvent::Left, None),
    ];
    let rejections = [
        RejectReason::UnknownDevice,
        RejectReason::UnknownSession,
        RejectReason::Replaced,
        RejectReason::BadVersion,
        RejectReason::Unauthorized,
        RejectReason::Malformed,
        RejectReason::Resync,
    ];
    events.extend(
        rejections
            .into_iter()
            .map(|reason| (DeviceEvent::Rejected { reason }, None)),
    );
    let stops = [
        StopReason::Replaced,
        StopReason::Fenced,
        StopReason::SessionLost,
        StopReason::Left,
        StopReason::Dismissed,
        StopReason::Cancelled,
    ];
    events.extend(stops.into_iter().map(|reason| {
        (
            DeviceEvent::Stop {
                computation: name("counter"),
                reason,
            },
            None,
        )
    }));
    events
}

#[test]
fn every_event_of_the_core_is_printed_as_documented_and_under_its_own_name() {
    let doc = Catalogue::documented();
    let names = names();
    let controller = controller_events()
        .iter()
        .map(|e| controller_event(e, &names))
        .collect::<Vec<_>>();
    let device = (device_events().iter())
        .map(|(e, state)| device_event(e, state.as_deref(), AT))
        .collect::<Vec<_>>();
    for (program, lines) in [(Program::Ac, controller), (Program::Device, device)] {
        for line in lines {
            doc.check(program, &line).unwrap();
            assert_ne!(line["event"], "other", "{line}");
            assert_ne!(line["reason"], "other", "{line}");
            assert_ne!(line["device"], "?", "{line}");
        }
    }
}

/// Every kind printed in the Rust sources under `dir`: each `"event": "kind"` of a JSON
/// literal, and each `event: "kind"` of a serialized struct.
fn printed_kinds(dir: &Path, kinds: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            printed_kinds(&path, kinds);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for pattern in ["\"event\": \"", " event: \""] {
                for literal in text.split(pattern).skip(1) {
                    kinds.push(literal.split('"').next().unwrap().to_string());
                }
            }
        }
    }
}

#[test]
fn every_kind_the_programs_print_is_documented_and_every_documented_kind_is_printed() {
    let doc = Catalogue::documented();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut printed = Vec::new();
    for program in [
        "examples/ac/src",
        "examples/device/src",
        "examples/program/src",
    ] {
        printed_kinds(&root.join(program), &mut printed);
    }
    assert!(printed.len() > 20, "{printed:?}");
    let documented: Vec<&str> = doc
        .kinds(Program::Ac)
        .chain(doc.kinds(Program::Device))
        .collect();
    for kind in &printed {
        assert!(
            documented.contains(&kind.as_str()),
            "{kind} is printed, not documented"
        );
    }
    for kind in documented {
        assert!(
            printed.iter().any(|k| k == kind),
            "{kind} is documented, never printed"
        );
    }
}

#[test]
fn the_check_refuses_what_the_document_does_not_describe() {
    let doc = Catalogue::documented();
    let good = json!({"event": "device_left", "device": "alpha", "at_ms": 1.5});
    doc.check(Program::Ac, &good).unwrap();
    let bad: Vec<(Program, Value)> = vec![
        (Program::Device, good.clone()),
        (
            Program::Ac,
            json!({"event": "device_vanished", "device": "alpha", "at_ms": 1.5}),
        ),
        (
            Program::Ac,
            json!({"event": "device_left", "device": "alpha"}),
        ),
        (
            Program::Ac,
            json!({"event": "device_left", "device": "alpha", "at_ms": 1.5, "why": 1}),
        ),
        (
            Program::Ac,
            json!({"event": "device_left", "device": 7, "at_ms": 1.5}),
        ),
        (
            Program::Ac,
            json!({"event": "device_left", "device": null, "at_ms": 1.5}),
        ),
        (Program::Ac, json!({"device": "alpha", "at_ms": 1.5})),
        (Program::Ac, json!(["device_left"])),
        (
            Program::Ac,
            json!({"event": "state_stored", "computation": "c", "device": "a",
        "version": 1.5, "bytes": 8, "at_ms": 1.0}),
        ),
    ];
    for (program, line) in bad {
        assert!(doc.check(program, &line).is_err(), "{program:?} {line}");
    }
    let nullable = json!({"event": "refused", "peer": null, "device": null, "reason": "tls",
        "detail": "TLS: bad certificate", "suppressed": 0, "at_ms": 2.0});
    doc.check(Program::Ac, &nullable).unwrap();
}

#[test]
fn a_malformed_document_is_refused() {
    let section = "## Events of the AC\n\n### `a`\n\n| Field | Type | Meaning |\n|---|---|---|\n";
    let device = "## Events of the device\n\n### `b`\n";
    let ok = format!("{section}| `x` | integer or null | X. |\n{device}");
    assert!(Catalogue::parse(&ok).is_ok());
    for bad in [
        format!("{section}| `x` | float | X. |\n{device}"),
        format!("{section}| `x` | string | X. |\n| `x` | string | X. |\n{device}"),
        format!("{section}### `a`\n{device}"),
        format!("### `a`\n{device}"),
        section.to_string(),
    ] {
        assert!(Catalogue::parse(&bad).is_err(), "{bad}");
    }
}
