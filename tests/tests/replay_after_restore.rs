//! An AC restored from its journal accepts no sealed bottle it may have accepted before
//! its restart: recorded HELLOs replayed to it keep no dead device alive, while a live
//! device, told to re-synchronize, jumps its counter ahead and keeps its session.

mod keyed;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyed::{joins, keyed_with, link};
use pcxses_core::wire::{Bottle, RejectReason};
use pcxses_core::{ControllerEvent, InputError};
use pcxses_tests::lab::Lab;
use pcxses_tests::memory_journal::Stored;

fn failed(lab: &Lab, device: u32) -> Vec<pcxses_core::Instant> {
    lab.ac_events_where(
        |e| matches!(e, ControllerEvent::DeviceFailed { device: d, .. } if d.0 == device),
    )
    .into_iter()
    .map(|(at, _)| at)
    .collect()
}

/// Two keyed devices, with an AC keeping a journal, three seconds on: far fewer bottles
/// than a journal record covers. Restored sessions get their dead interval from the
/// restore, nothing more.
fn journaled() -> (Lab, Arc<Mutex<Stored>>) {
    let mut lab = keyed_with(2, |c| c.restart_grace = Duration::ZERO);
    let stored = lab.journal_ac();
    lab.run(3_000);
    (lab, stored)
}

/// Every sealed HELLO device `i` sent so far.
fn sealed_hellos(lab: &Lab, i: usize) -> Vec<Vec<u8>> {
    let recorded: Vec<Vec<u8>> = lab
        .wire
        .iter()
        .filter(|p| p.from == link(i) && !p.is_plain() && p.kind() == "hello")
        .map(|p| p.bytes.clone())
        .collect();
    assert!(recorded.len() >= 20, "{} HELLOs", recorded.len());
    recorded
}

/// The sealed REJECT `Resync`s sent to device `i` from the `since`-th packet on.
fn resyncs(lab: &Lab, i: usize, since: usize) -> usize {
    lab.wire[since..]
        .iter()
        .filter(|p| p.to == link(i) && !p.is_plain())
        .filter(
            |p| matches!(p.bottle(), Some(Bottle::Reject(r)) if r.reason == RejectReason::Resync),
        )
        .count()
}

#[test]
fn a_restored_ac_refuses_replayed_hellos_while_a_live_device_resyncs() {
    let (mut lab, stored) = journaled();
    let recorded = sealed_hellos(&lab, 0);
    let live = lab.device(1).session().expect("dev1 joined");
    // dev0 dies with the AC; the AC comes back from its journal.
    lab.crash(0);
    let s = stored.lock().unwrap().clone();
    let sent = lab.wire.len();
    lab.restore_ac(&s.snapshot, s.changes.iter().map(Vec::as_slice));
    let restored = lab.now;
    for hello in &recorded {
        assert_eq!(lab.inject_to_ac(link(0), hello), Err(InputError::Replayed));
        lab.run(25);
    }
    let dead = failed(&lab, 0);
    assert_eq!(dead.len(), 1, "dev0 is declared dead");
    assert!(dead[0] <= restored + Duration::from_millis(400));
    // dev1 was told to re-synchronize and kept its session.
    assert!(resyncs(&lab, 1, sent) >= 1);
    assert!(failed(&lab, 1).is_empty());
    assert_eq!(lab.device(1).session(), Some(live));
    assert_eq!(joins(&lab, 1), 1);
    assert!(lab
        .device_events_where(1, |e| matches!(e, pcxses_core::DeviceEvent::Stop { .. }))
        .is_empty());
}

#[test]
fn replays_from_another_link_do_not_use_up_a_live_devices_resync() {
    let (mut lab, stored) = journaled();
    let recorded = sealed_hellos(&lab, 1);
    let live = lab.device(1).session().expect("dev1 joined");
    let s = stored.lock().unwrap().clone();
    let sent = lab.wire.len();
    lab.restore_ac(&s.snapshot, s.changes.iter().map(Vec::as_slice));
    // An attacker on the path replays dev1's own HELLOs from its address, faster than
    // dev1 sends them, for several dead intervals.
    let attacker = pcxses_core::LinkId(99);
    for hello in recorded.iter().cycle().take(200) {
        assert_eq!(lab.inject_to_ac(attacker, hello), Err(InputError::Replayed));
        lab.run(5);
    }
    assert!(
        resyncs(&lab, 1, sent) >= 1,
        "dev1 was never told to re-synchronize"
    );
    assert!(failed(&lab, 1).is_empty());
    assert_eq!(lab.device(1).session(), Some(live));
    assert!(lab
        .device_events_where(1, |e| matches!(e, pcxses_core::DeviceEvent::Stop { .. }))
        .is_empty());
}

#[test]
fn a_device_declared_dead_while_frozen_across_a_restart_learns_it_was_replaced() {
    // No fencing: the device learns of its death only from the AC.
    let mut lab = keyed_with(2, |c| {
        c.restart_grace = Duration::ZERO;
        c.fencing = false;
    });
    let stored = lab.journal_ac();
    lab.run(3_000);
    let old = lab.device(1).session().expect("dev1 joined");
    // dev1 freezes; the AC restarts from its journal and declares dev1 dead meanwhile.
    lab.frozen[1] = true;
    let s = stored.lock().unwrap().clone();
    lab.restore_ac(&s.snapshot, s.changes.iter().map(Vec::as_slice));
    lab.run(1_000);
    assert_eq!(failed(&lab, 1).len(), 1);
    // Its counters are below the restored window's floor, yet it is told it was replaced:
    // it stops its computation and joins again.
    lab.frozen[1] = false;
    lab.run(1_000);
    let replaced = lab.device_events_where(1, |e| {
        matches!(
            e,
            pcxses_core::DeviceEvent::Stop {
                reason: pcxses_core::device::StopReason::Replaced,
                ..
            }
        )
    });
    assert_eq!(replaced.len(), 1);
    assert_ne!(lab.device(1).session(), Some(old));
    assert!(lab.device(1).session().is_some());
}
