//! Pre-shared-key mode in the lab: devices join by challenge–response and seal every
//! bottle; a wrong key, a replayed HELLO, a forged STATE and a modified MORPH chunk are
//! refused and counted, and none of them changes what the AC holds; an AC restored from
//! its journal still refuses bottles recorded long before its crash. Forged challenges,
//! joins replayed across a restart and bottles replayed to a restored AC have files of
//! their own.

mod keyed;

use keyed::{joins, keyed, link};
use pcxses_core::controller::{ComputationId, DeviceId, Placement};
use pcxses_core::psk::Psk;
use pcxses_core::wire::{Bottle, StateBottle, StateChunk};
use pcxses_core::{ControllerEvent, DeviceEvent, InputError};
use pcxses_tests::lab::{Lab, Verdict};
use proptest::prelude::*;

fn joined(lab: &Lab, device: u32) -> bool {
    joins(lab, device) > 0
}

#[test]
fn keyed_devices_join_seal_everything_and_migrate() {
    let mut lab = keyed(2);
    lab.run(500);
    assert!(joined(&lab, 0) && joined(&lab, 1));
    // Only the first GOOD_MORNING of each device travels plain; even CHALLENGEs are sealed.
    let plain: Vec<&str> = lab
        .wire
        .iter()
        .filter(|p| p.is_plain())
        .map(|p| p.kind())
        .collect();
    assert!(plain.iter().all(|k| *k == "good_morning"), "{plain:?}");
    let challenges = lab.sent("challenge");
    assert!(!challenges.is_empty());
    assert!(challenges.iter().all(|p| !p.is_plain()));
    let sealed = lab.wire.iter().filter(|p| !p.is_plain()).count();
    assert!(sealed > 10, "{sealed} sealed bottles");
    lab.crash(0);
    lab.run(1_000);
    let done = lab.ac_events_where(|e| matches!(e, ControllerEvent::MigrationCompleted { .. }));
    assert_eq!(done.len(), 1);
    let (lkgs, _) = lab.ac().lkgs(ComputationId(0)).expect("comp0");
    let lkgs = lkgs.to_vec();
    let installs = lab.device_events_where(
        1,
        |e| matches!(e, DeviceEvent::Install(i) if i.lkgs() == lkgs),
    );
    assert_eq!(installs.len(), 1);
    let ac = *lab.ac().stats();
    assert_eq!((ac.unauthenticated, ac.replayed), (0, 0));
}

#[test]
fn a_plain_good_morning_of_a_keyed_device_is_answered_but_never_accepted() {
    let mut lab = keyed(2);
    lab.run(1_000);
    let plain = lab
        .wire
        .iter()
        .find(|p| p.from == link(0) && p.is_plain() && p.kind() == "good_morning")
        .expect("dev0 asked for a challenge")
        .bytes
        .clone();
    let stranger = pcxses_core::LinkId(42);
    let (since, before) = (lab.wire.len(), *lab.ac().stats());
    // A transport takes an accepted bottle as proof of its link: this one proves nothing.
    assert_eq!(
        lab.inject_to_ac(stranger, &plain),
        Err(InputError::Challenged)
    );
    assert_eq!(lab.ac().stats().challenged, before.challenged + 1);
    assert_eq!(lab.ac().stats().rejected(), before.rejected());
    let answers = lab.answers_to(stranger, since);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].kind(), "challenge");
    // A stream of them aimed at one address (a reflector's victim) gets a few answers at
    // the per-source rate, not one each: a CHALLENGE is longer than what asked for it.
    let since = lab.wire.len();
    for _ in 0..100 {
        assert_eq!(
            lab.inject_to_ac(stranger, &plain),
            Err(InputError::Challenged)
        );
    }
    lab.run(1);
    let burst = pcxses_core::controller::RefusalLimits::DEFAULT.per_source_burst as usize;
    let answered = lab.answers_to(stranger, since).len();
    assert!(
        answered <= burst + 1,
        "{answered} challenges to one address"
    );
    assert!(lab.ac().stats().unanswered >= 100 - answered as u64);
}

#[test]
fn a_device_with_a_wrong_key_never_joins() {
    let mut lab = keyed(2);
    lab.boot(1, |d| d.psk = Some(Psk([0xee; 32])));
    lab.run(2_000);
    assert!(joined(&lab, 0));
    assert!(!joined(&lab, 1));
    // The AC's challenges are sealed under the key dev1 should have: it refuses them.
    assert!(lab.device(1).stats().unauthenticated >= 1);
    assert_eq!(
        lab.ac().placement(ComputationId(1)),
        Some(Placement::Unplaced)
    );
    // A device without a key at all gets no further.
    lab.boot(1, |d| d.psk = None);
    lab.run(1_000);
    assert!(!joined(&lab, 1));
}

#[test]
fn a_replayed_hello_does_not_keep_a_dead_device_alive() {
    let mut lab = keyed(2);
    lab.run(500);
    let hello = lab
        .wire
        .iter()
        .rev()
        .find(|p| p.from == link(0) && p.kind() == "hello")
        .cloned()
        .expect("a HELLO of dev0");
    lab.crash(0);
    let crashed = lab.now;
    let mut refused = 0;
    for _ in 0..10 {
        lab.run(50);
        if lab.inject_to_ac(link(0), &hello.bytes) == Err(InputError::Replayed) {
            refused += 1;
        }
    }
    assert_eq!(refused, 10);
    assert!(lab.ac().stats().replayed >= 10);
    let failed = lab.ac_events_where(
        |e| matches!(e, ControllerEvent::DeviceFailed { device, .. } if device.0 == 0),
    );
    assert_eq!(failed.len(), 1);
    // Declared dead as if nothing had come: the replays reset no timer.
    assert!(failed[0].0 <= crashed + std::time::Duration::from_millis(400));
}

#[test]
fn a_forged_state_changes_no_lkgs() {
    let mut lab = keyed(2);
    lab.run(500);
    let before = lab
        .ac()
        .lkgs(ComputationId(0))
        .map(|(s, v)| (s.to_vec(), v));
    let session = lab.device(0).session().expect("joined");
    let forged = Bottle::State(StateBottle {
        session,
        chunk: StateChunk {
            handle: 0,
            version: 1_000,
            total_len: 4,
            index: 0,
            data: b"evil",
        },
    });
    let mut plain = vec![0u8; 128];
    let n = forged.encode(&mut plain).unwrap();
    plain.truncate(n);
    // Plain, and with a trailer made up without the key.
    let mut sealed = plain.clone();
    sealed.extend_from_slice(&[7u8; 4]);
    sealed.extend_from_slice(&[0x5a; 16]);
    assert_eq!(
        lab.inject_to_ac(link(0), &plain),
        Err(InputError::Unauthenticated)
    );
    assert_eq!(
        lab.inject_to_ac(link(0), &sealed),
        Err(InputError::Unauthenticated)
    );
    lab.run(50);
    let after = lab
        .ac()
        .lkgs(ComputationId(0))
        .map(|(s, v)| (s.to_vec(), v));
    assert!(after.as_ref().is_some_and(|(s, _)| s != b"evil"));
    assert!(after.unwrap().1 < 1_000, "{before:?}");
    assert_eq!(lab.ac().stats().unauthenticated, 2);
}

#[test]
fn a_modified_morph_chunk_is_refused_and_the_transfer_recovers() {
    let mut lab = keyed(2);
    lab.run(500);
    let mut flipped = 0;
    lab.set_filter(move |p| {
        if p.to == link(1) && p.kind() == "object_chunk" && flipped < 3 {
            flipped += 1;
            let at = p.bytes.len() / 2;
            p.bytes[at] ^= 0x40;
        }
        Verdict::Deliver
    });
    lab.crash(0);
    lab.run(1_500);
    assert!(lab.device(1).stats().unauthenticated >= 3);
    let done = lab.ac_events_where(
        |e| matches!(e, ControllerEvent::MigrationCompleted { to, .. } if *to == DeviceId(1)),
    );
    assert_eq!(done.len(), 1);
    assert!(lab
        .ac_events_where(|e| matches!(e, ControllerEvent::MigrationFailed { .. }))
        .is_empty());
    let (lkgs, _) = lab.ac().lkgs(ComputationId(0)).expect("comp0");
    let lkgs = lkgs.to_vec();
    assert_eq!(
        lab.device_events_where(
            1,
            |e| matches!(e, DeviceEvent::Install(i) if i.lkgs() == lkgs)
        )
        .len(),
        1
    );
}

/// A sealed-looking bottle: a real bottle of a live session with a made-up trailer, or
/// one of its sealed bottles with bytes flipped.
fn forgery(lab: &Lab, pick: usize, flip: usize, trailer: &[u8; 20]) -> Vec<u8> {
    let sealed: Vec<_> = lab.wire.iter().filter(|p| !p.is_plain()).collect();
    let mut bytes = sealed[pick % sealed.len()].bytes.clone();
    if flip.is_multiple_of(2) {
        let end = bytes.len() - 20;
        bytes[end..].copy_from_slice(trailer);
    } else {
        let at = flip % bytes.len();
        bytes[at] ^= trailer[0] | 1;
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn keyed_machines_refuse_random_and_forged_bytes_without_a_trace(
        random in prop::collection::vec(any::<u8>(), 0..300),
        pick in any::<usize>(),
        flip in any::<usize>(),
        trailer in any::<[u8; 20]>(),
    ) {
        let mut lab = keyed(2);
        lab.run(500);
        let forged = forgery(&lab, pick, flip, &trailer);
        let before = lab.ac().snapshot();
        for bytes in [&random, &forged] {
            let refused = lab.ac().stats().rejected();
            // Random bytes may happen to be a plain GOOD_MORNING, answered with a challenge.
            if lab.inject_to_ac(link(0), bytes).is_err() {
                prop_assert_eq!(lab.ac().stats().rejected(), refused + 1);
            }
            let r = lab.inject_to_device(1, bytes);
            prop_assert!(r.is_err());
        }
        prop_assert_eq!(lab.ac().snapshot(), before);
    }
}

#[test]
fn an_ac_restored_from_its_journal_refuses_bottles_recorded_long_before_its_crash() {
    let mut lab = keyed(1);
    let stored = lab.journal_ac();
    lab.run(500);
    let early = lab
        .wire
        .iter()
        .find(|p| p.from == link(0) && p.kind() == "hello")
        .cloned()
        .expect("a HELLO of dev0");
    // Over a thousand HELLOs later, with nothing else changed, the AC crashes.
    lab.run(110_000);
    let s = stored.lock().unwrap().clone();
    lab.restore_ac(&s.snapshot, s.changes.iter().map(Vec::as_slice));
    assert_eq!(
        lab.inject_to_ac(link(0), &early.bytes),
        Err(InputError::Replayed)
    );
    // The device carries on in its session with the restored AC.
    lab.run(2_000);
    let joins = lab.ac_events_where(|e| matches!(e, ControllerEvent::DeviceJoined { .. }));
    assert_eq!(joins.len(), 1);
    assert_eq!(lab.ac().stats().unauthenticated, 0);
    assert!(lab.ac().stats().received > 10);
}
