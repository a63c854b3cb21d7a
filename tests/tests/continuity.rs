//! At most one live copy, and no acknowledged state lost: leases counted from what the AC
//! answered, lost HELLOs and MORPH answers recovered, computations resumed from their LKGS,
//! and quarantine kept for the computation's own failures.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use pcxses_core::controller::{ComputationId, DeviceId, MigrationFailure, Placement};
use pcxses_core::device::{DeviceEvent, StopReason};
use pcxses_core::wire::{Bottle, StateMode};
use pcxses_core::{ControllerEvent, Name};
use pcxses_tests::lab::{Lab, Packet};

fn fenced(lab: &Lab, i: usize) -> usize {
    lab.device_events_where(i, |e| {
        matches!(
            e,
            DeviceEvent::Stop {
                reason: StopReason::Fenced,
                ..
            }
        )
    })
    .len()
}

fn joins_at_ac(lab: &Lab, i: usize) -> usize {
    lab.ac_events_where(
        |e| matches!(e, ControllerEvent::DeviceJoined { device, .. } if *device == DeviceId(i as u32)),
    )
    .len()
}

/// Drops the first `n` packets for which `f` holds.
fn drop_first(lab: &mut Lab, n: usize, f: impl Fn(&Packet) -> bool + 'static) {
    let left = Rc::new(Cell::new(n));
    lab.drop_where(move |p| {
        let hit = left.get() > 0 && f(p);
        if hit {
            left.set(left.get() - 1);
        }
        hit
    });
}

/// Kills `dev0` of a settled lab so that `comp0` (state `b"state"` acknowledged) moves to
/// `dev1`.
fn kill_dev0(lab: &mut Lab) {
    lab.crash(0);
    lab.run(400);
}

// ---- Leases ----

#[test]
fn a_join_whose_first_good_morning_was_lost_waits_for_a_lease_instead_of_fencing() {
    let mut lab = Lab::new(1, |_| {});
    // The first GOOD_MORNING goes nowhere (a transport not connected yet); the retry
    // comes after more than the fence interval (225 ms).
    lab.boot(0, |d| {
        d.join_retry = Duration::from_millis(400);
        d.join_retry_max = Duration::from_millis(400);
    });
    drop_first(&mut lab, 1, |p| p.kind() == "good_morning");
    lab.run(2_000);
    assert_eq!(fenced(&lab, 0), 0, "{:?}", lab.device_events[0]);
    assert_eq!(joins_at_ac(&lab, 0), 1);
    let joined = lab.device_events_where(0, |e| matches!(e, DeviceEvent::Joined { .. }));
    assert_eq!(joined.len(), 1);
    let lease = lab.device(0).lease_until().expect("a lease");
    assert!(lease > lab.now);
}

#[test]
fn two_hellos_lost_in_a_row_cost_no_fence() {
    let mut lab = Lab::new(1, |_| {});
    lab.run(1_000);
    let before = lab.sent("hello").len();
    drop_first(&mut lab, 2, |p| p.kind() == "hello");
    lab.run(2_000);
    assert!(lab.sent("hello").len() > before + 2);
    assert_eq!(fenced(&lab, 0), 0, "{:?}", lab.device_events[0]);
    assert_eq!(joins_at_ac(&lab, 0), 1);
}

#[test]
fn a_device_hellos_at_most_four_times_an_interval_while_its_acks_are_lost() {
    let mut lab = Lab::new(1, |_| {});
    lab.run(1_000);
    let before = lab.sent("hello").len();
    lab.drop_where(|p| p.kind() == "hello_ack");
    // 200 ms: less than the fence lease, so the session stays.
    lab.run(200);
    let sent = lab.sent("hello").len() - before;
    assert!((3..=9).contains(&sent), "{sent} HELLOs in 200 ms");
}

// ---- Joining ----

#[test]
fn join_retries_back_off_no_further_than_the_dead_interval() {
    let mut lab = Lab::new(1, |_| {});
    lab.boot(0, |d| {
        d.join_retry = Duration::from_millis(50);
        d.join_retry_max = Duration::from_secs(8);
    });
    lab.drop_where(|p| p.kind() == "good_morning");
    lab.run(10_000);
    lab.clear_filter();
    // The backoff is at most the dead interval (300 ms), with ±50% jitter.
    lab.run(460);
    assert_eq!(joins_at_ac(&lab, 0), 1);
}

// ---- State acknowledgements ----

#[test]
fn an_ack_of_a_state_already_superseded_still_tells_the_device_what_the_ac_holds() {
    let mut lab = Lab::new(1, |c| c.mode = Some(StateMode::Separate));
    lab.run(100);
    let now = lab.now;
    lab.device(0).set_state(now, "comp0", b"one").expect("runs");
    lab.device(0).set_state(now, "comp0", b"two").expect("runs");
    // Version 2 never arrives: the AC holds version 1 only.
    lab.drop_where(|p| matches!(p.bottle(), Some(Bottle::State(s)) if s.chunk.version == 2));
    lab.run(300);
    let stored = lab.device_events_where(0, |e| matches!(e, DeviceEvent::StateStored { .. }));
    assert_eq!(
        stored.last().map(|(_, e)| e.clone()),
        Some(DeviceEvent::StateStored {
            computation: Name::try_from("comp0").unwrap(),
            version: 1
        })
    );
    assert_eq!(lab.ac().lkgs(ComputationId(0)), Some((&b"one"[..], 1)));
}

// ---- MORPH ----

#[test]
fn a_lost_morph_ack_is_asked_for_again_and_the_migration_completes() {
    let mut lab = Lab::settled();
    drop_first(&mut lab, 1, |p| p.kind() == "morph_ack");
    kill_dev0(&mut lab);
    lab.run(500);
    let dropped = lab.sent("morph_ack").len();
    assert!(dropped >= 2, "the ack was sent again: {dropped}");
    assert_eq!(
        lab.ac().placement(ComputationId(0)),
        Some(Placement::Running(DeviceId(1)))
    );
    let failed = lab.ac_events_where(|e| matches!(e, ControllerEvent::MigrationFailed { .. }));
    assert!(failed.is_empty(), "{failed:?}");
    let stops = lab.device_events_where(1, |e| matches!(e, DeviceEvent::Stop { .. }));
    assert!(stops.is_empty(), "{stops:?}");
}

// ---- Resuming ----

/// `dev0`'s first install after `since`: its computation, where from, and its LKGS.
fn first_install(lab: &Lab, since: usize) -> (String, String, Vec<u8>) {
    lab.device_events[0][since..]
        .iter()
        .find_map(|(_, e)| match e {
            DeviceEvent::Install(i) => {
                Some((i.computation.into(), i.replaces.into(), i.lkgs().to_vec()))
            }
            _ => None,
        })
        .expect("an install")
}

fn joined_runs(lab: &Lab, since: usize) -> Vec<Vec<String>> {
    lab.device_events[0][since..]
        .iter()
        .filter_map(|(_, e)| match e {
            DeviceEvent::Joined { run, .. } => Some(run.iter().map(|&c| c.into()).collect()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_device_restarted_within_its_dead_interval_resumes_from_its_lkgs() {
    let mut lab = Lab::settled();
    lab.crash(0);
    lab.boot(0, |_| {});
    lab.device_events[0].clear();
    lab.run(500);
    assert_eq!(joined_runs(&lab, 0), vec![Vec::<String>::new()]);
    let (computation, replaces, lkgs) = first_install(&lab, 0);
    assert_eq!((computation.as_str(), replaces.as_str()), ("comp0", "dev0"));
    assert_eq!(lkgs, b"state");
    assert_eq!(
        lab.ac().placement(ComputationId(0)),
        Some(Placement::Running(DeviceId(0)))
    );
    assert_eq!(
        lab.ac().lkgs(ComputationId(0)).map(|(s, _)| s),
        Some(&b"state"[..])
    );
}

#[test]
fn a_device_that_fenced_itself_resumes_from_its_lkgs() {
    let mut lab = Lab::settled();
    let since = lab.device_events[0].len();
    // Frozen just after a HELLO was acknowledged, for longer than the fence lease
    // (225 ms) but shorter than the dead interval (300 ms).
    let hellos = lab.sent("hello").len();
    while lab.sent("hello").len() == hellos {
        lab.run(1);
    }
    lab.run(3);
    lab.frozen[0] = true;
    lab.run(235);
    lab.frozen[0] = false;
    lab.run(600);
    assert_eq!(fenced(&lab, 0), 1);
    assert!(lab
        .ac_events_where(|e| matches!(e, ControllerEvent::DeviceFailed { .. }))
        .is_empty());
    assert_eq!(joined_runs(&lab, since), vec![Vec::<String>::new()]);
    let (computation, _, lkgs) = first_install(&lab, since);
    assert_eq!((computation.as_str(), &lkgs[..]), ("comp0", &b"state"[..]));
    assert_eq!(
        lab.ac().placement(ComputationId(0)),
        Some(Placement::Running(DeviceId(0)))
    );
}

#[test]
fn a_computation_without_lkgs_starts_from_its_initial_state_on_re_join() {
    let mut lab = Lab::new(1, |_| {});
    lab.run(200);
    lab.crash(0);
    lab.boot(0, |_| {});
    lab.device_events[0].clear();
    lab.run(300);
    assert_eq!(joined_runs(&lab, 0), vec![vec!["comp0".to_string()]]);
    assert!(lab
        .device_events_where(0, |e| matches!(e, DeviceEvent::Install(_)))
        .is_empty());
}

// ---- Quarantine ----

#[test]
fn stalled_migrations_never_quarantine_and_the_same_target_is_tried_again() {
    let mut lab = Lab::settled();
    // No chunk reaches dev1: every attempt stalls (MORPH timeout 1 s).
    lab.drop_where(|p| p.kind() == "object_chunk");
    kill_dev0(&mut lab);
    lab.run(8_000);
    let timed_out = lab.ac_events_where(|e| {
        matches!(
            e,
            ControllerEvent::MigrationFailed {
                reason: MigrationFailure::TimedOut,
                ..
            }
        )
    });
    assert!(timed_out.len() >= 3, "{timed_out:?}");
    assert!(lab
        .ac_events_where(|e| matches!(e, ControllerEvent::Quarantined { .. }))
        .is_empty());
    lab.clear_filter();
    lab.run(3_000);
    assert_eq!(
        lab.ac().placement(ComputationId(0)),
        Some(Placement::Running(DeviceId(1)))
    );
}

#[test]
fn a_quarantined_computation_is_tried_again_after_its_backoff() {
    let mut lab = Lab::settled_with(4, |c| c.quarantine_retry = Duration::from_secs(2));
    lab.accept_installs = vec![true, false, false, false];
    lab.crash(0);
    lab.run(1_000);
    let quarantined = lab.ac_events_where(|e| matches!(e, ControllerEvent::Quarantined { .. }));
    assert_eq!(quarantined.len(), 1);
    assert_eq!(
        lab.ac().placement(ComputationId(0)),
        Some(Placement::Quarantined)
    );
    lab.accept_installs = vec![true; 4];
    let at = quarantined[0].0.as_millis();
    lab.run(at + 1_900 - lab.now.as_millis());
    assert_eq!(
        lab.ac().placement(ComputationId(0)),
        Some(Placement::Quarantined),
        "still within the backoff"
    );
    lab.run(600);
    assert!(matches!(
        lab.ac().placement(ComputationId(0)),
        Some(Placement::Running(_))
    ));
}

/// Runs `lab` for `ms`, crashing and rebooting at once every device in `devices` the moment
/// its application is handed an install, as an application that crashes starting it.
fn crash_on_install(lab: &mut Lab, devices: &[usize], ms: u64) {
    for _ in 0..ms / 20 {
        lab.run(20);
        for &i in devices {
            if lab.device_events[i]
                .iter()
                .any(|(_, e)| matches!(e, DeviceEvent::Install(_)))
            {
                lab.crash(i);
                lab.boot(i, |_| {});
                lab.device_events[i].clear();
            }
        }
    }
}

#[test]
fn a_computation_whose_install_crashes_every_target_is_quarantined() {
    let mut lab = Lab::settled();
    // The applications crash before they answer: no MORPH ack ever leaves.
    lab.drop_where(|p| p.kind() == "morph_ack");
    lab.crash(0);
    crash_on_install(&mut lab, &[1], 20_000);
    let quarantined = lab.ac_events_where(|e| matches!(e, ControllerEvent::Quarantined { .. }));
    assert!(!quarantined.is_empty());
    let died = lab.ac_events_where(|e| {
        matches!(
            e,
            ControllerEvent::MigrationFailed {
                reason: MigrationFailure::DiedInstalling,
                ..
            }
        )
    });
    assert!(died.len() >= 3, "{died:?}");
}

#[test]
fn a_state_that_crashes_its_home_on_every_hand_back_is_quarantined() {
    let mut lab = Lab::settled();
    lab.crash(0);
    lab.boot(0, |_| {});
    crash_on_install(&mut lab, &[0], 20_000);
    let quarantined = lab.ac_events_where(|e| matches!(e, ControllerEvent::Quarantined { .. }));
    assert_eq!(
        quarantined.len(),
        1,
        "then retried after 30 s at the earliest"
    );
}

#[test]
fn a_home_that_leaves_while_its_computation_is_handed_back_stops_it() {
    let mut lab = Lab::settled();
    lab.crash(0);
    lab.boot(0, |_| {});
    // The hand-back is in flight when dev0 leaves.
    lab.drop_where(|p| p.kind() == "morph" && p.to == pcxses_core::LinkId(1));
    lab.run(30);
    let now = lab.now;
    lab.device(0).leave(now);
    lab.clear_filter();
    lab.run(2_000);
    assert_eq!(
        lab.ac().placement(ComputationId(0)),
        Some(Placement::Stopped)
    );
    assert!(lab
        .ac_events_where(
            |e| matches!(e, ControllerEvent::MigrationStarted { to, .. } if *to == DeviceId(1))
        )
        .is_empty());
}

#[test]
fn every_native_computation_goes_home_however_many() {
    let mut lab = Lab::new(4, |c| {
        c.devices[0] =
            pcxses_core::controller::DeviceSpec::new("dev0", &["comp0", "comp2", "comp3"]);
        c.devices[2] = pcxses_core::controller::DeviceSpec::new("dev2", &[]);
        c.devices[3] = pcxses_core::controller::DeviceSpec::new("dev3", &[]);
        c.max_morphs_per_target = 1;
    });
    lab.run(100);
    let now = lab.now;
    for c in ["comp0", "comp2", "comp3"] {
        lab.device(0).set_state(now, c, b"state").expect("runs");
    }
    lab.run(200);
    lab.crash(0);
    lab.boot(0, |_| {});
    lab.run(2_000);
    for c in [0, 2, 3] {
        assert_eq!(
            lab.ac().placement(ComputationId(c)),
            Some(Placement::Running(DeviceId(0))),
            "comp{c}"
        );
    }
}

#[test]
fn a_state_from_an_authenticated_session_is_not_handed_to_an_impostor() {
    let mut lab = Lab::settled();
    // dev0 authenticates by its transport (a QUIC certificate).
    lab.identities[0] = Some("dev0".into());
    lab.crash(0);
    lab.boot(0, |_| {});
    lab.run(500);
    assert_eq!(
        lab.ac().placement(ComputationId(0)),
        Some(Placement::Running(DeviceId(0)))
    );
    let now = lab.now;
    lab.device(0)
        .set_state(now, "comp0", b"secret")
        .expect("runs");
    lab.run(300);
    // Someone without dev0's certificate joins as dev0 from elsewhere.
    let gm = pcxses_core::wire::Bottle::GoodMorning(pcxses_core::wire::GoodMorning {
        device: "dev0",
        nonce: pcxses_core::wire::JoinNonce([9; 8]),
        mode: StateMode::Separate,
        hello_ms: 100,
        dead_ms: 300,
        max_bottle: 1200,
    });
    let impostor = pcxses_core::LinkId(99);
    let since = lab.wire.len();
    let _ = lab.inject_to_ac(impostor, &pcxses_tests::lab::encode(&gm));
    lab.run(500);
    let kinds: Vec<&str> = lab
        .answers_to(impostor, since)
        .iter()
        .map(|p| p.kind())
        .collect();
    assert!(kinds.contains(&"good_morning_ack"), "{kinds:?}");
    assert!(!kinds.contains(&"morph"), "{kinds:?}");
    assert!(!kinds.contains(&"object_chunk"), "{kinds:?}");
}

#[test]
fn a_migrated_computation_is_still_answered_for_and_cancelled_after_its_outcome_is_forgotten() {
    let mut lab = Lab::settled();
    kill_dev0(&mut lab);
    let Some(Bottle::MorphAck(ack)) = lab.sent("morph_ack").last().and_then(|p| p.bottle()) else {
        panic!("comp0 moved to dev1");
    };
    let (session, morph) = (ack.session, ack.morph);
    // More MORPHs than the device remembers outcomes of, each refused.
    for m in 1..=10 {
        let junk = Bottle::Morph(pcxses_core::wire::Morph {
            session,
            morph: morph + m,
            handle: 100 + m as u16,
            manifest: b"junk",
            signature: None,
        });
        lab.inject_to_device(1, &pcxses_tests::lab::encode(&junk))
            .expect("answered with MORPH fail");
    }
    // The AC asks again: the computation the MORPH brought runs here.
    let header = Bottle::Morph(pcxses_core::wire::Morph {
        session,
        morph,
        handle: 1,
        manifest: b"junk",
        signature: None,
    });
    let acks = lab.sent("morph_ack").len();
    lab.inject_to_device(1, &pcxses_tests::lab::encode(&header))
        .expect("a repeated MORPH");
    assert_eq!(lab.sent("morph_ack").len(), acks + 1);
    // And a cancel still stops it.
    let cancel = Bottle::MorphFail(pcxses_core::wire::MorphFail {
        session,
        morph,
        reason: pcxses_core::wire::MorphFailReason::TimedOut,
    });
    lab.inject_to_device(1, &pcxses_tests::lab::encode(&cancel))
        .expect("a cancel");
    let stops = lab.device_events_where(1, |e| {
        matches!(
            e,
            DeviceEvent::Stop {
                reason: StopReason::Cancelled,
                ..
            }
        )
    });
    assert_eq!(stops.len(), 1);
    assert!(lab.device(1).running().all(|c| c != "comp0"));
}
