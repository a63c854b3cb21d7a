//! Answers to refused bottles: never longer than what provoked them from an unauthenticated
//! source, rate-limited per source and overall; and a session id guessed from another link
//! gets exactly the answer of a wrong guess and changes nothing.

use pcxses_core::controller::{ComputationId, DeviceId, Placement, RefusalLimits};
use pcxses_core::wire::{
    Bottle, GoodBye, GoodMorning, Hello, JoinNonce, StateBottle, StateChunk, StateMode,
};
use pcxses_core::{ControllerEvent, InputError, LinkId, SessionId, Stats};
use pcxses_tests::lab::{encode, Lab, Packet};

/// Everything the AC sent from the `since`-th packet on.
fn sent_since(lab: &Lab, since: usize) -> Vec<Packet> {
    lab.wire[since..]
        .iter()
        .filter(|p| p.from == pcxses_tests::sim::AC)
        .cloned()
        .collect()
}

fn unknown_name() -> Vec<u8> {
    encode(&Bottle::GoodMorning(GoodMorning {
        device: "nobody",
        nonce: JoinNonce([3; 8]),
        mode: StateMode::Separate,
        hello_ms: 100,
        dead_ms: 300,
        max_bottle: 1200,
    }))
}

#[test]
fn a_tiny_or_undecodable_datagram_gets_no_answer_longer_than_itself() {
    let mut lab = Lab::settled();
    let mut source = 1_000;
    for len in 0..=40 {
        for fill in [0x00, 0x01, 0x02, 0x7f, 0xff] {
            source += 1;
            let since = lab.wire.len();
            let _ = lab.inject_to_ac(LinkId(source), &vec![fill; len]);
            for answer in lab.answers_to(LinkId(source), since) {
                assert!(
                    answer.bytes.len() <= len,
                    "{} bytes of {fill:#x} got a {}-byte {}",
                    len,
                    answer.bytes.len(),
                    answer.kind()
                );
            }
        }
    }
    // One byte of another protocol version: no answer at all.
    let since = lab.wire.len();
    assert!(lab.inject_to_ac(LinkId(7_777), &[0x02]).is_err());
    assert!(lab.answers_to(LinkId(7_777), since).is_empty());
    assert!(lab.ac().stats().unanswered > 0);
}

#[test]
fn refusals_are_answered_at_a_bounded_rate_per_source_and_overall() {
    let mut lab = Lab::settled();
    let limits = RefusalLimits::DEFAULT;
    let gm = unknown_name();
    // One source flooding at one instant: its burst, then nothing.
    let since = lab.wire.len();
    let unanswered = lab.ac().stats().unanswered;
    for _ in 0..1_000 {
        assert_eq!(
            lab.inject_to_ac(LinkId(500), &gm),
            Err(InputError::UnknownDevice)
        );
    }
    let answers = lab.answers_to(LinkId(500), since).len();
    assert!(answers >= 1, "a refused join is told why");
    assert!(answers as u32 <= 1 + limits.per_source_burst, "{answers}");
    assert_eq!(
        lab.ac().stats().unanswered,
        unanswered + 1_000 - answers as u64
    );
    // Ten thousand sources at one instant: the overall burst, then nothing.
    let since = lab.wire.len();
    for l in 0..10_000 {
        let _ = lab.inject_to_ac(LinkId(10_000 + l), &gm);
    }
    let answers = sent_since(&lab, since)
        .iter()
        .filter(|p| p.kind() == "reject")
        .count();
    assert!(answers as u32 <= 1 + limits.total_burst, "{answers}");
    // Over a second, the overall rate.
    let since = lab.wire.len();
    for step in 0..100 {
        lab.run(10);
        for l in 0..100 {
            let _ = lab.inject_to_ac(LinkId(100_000 + step * 100 + l), &gm);
        }
    }
    let answers = sent_since(&lab, since)
        .iter()
        .filter(|p| p.kind() == "reject")
        .count();
    assert!(
        answers as u32 <= limits.total_per_s + 1 + limits.total_burst,
        "{answers} answers in a second"
    );
    // The devices were not disturbed.
    assert!(lab
        .ac_events_where(|e| matches!(e, ControllerEvent::DeviceFailed { .. }))
        .is_empty());
}

fn state(session: SessionId) -> Vec<u8> {
    encode(&Bottle::State(StateBottle {
        session,
        chunk: StateChunk {
            handle: 0,
            version: 9,
            total_len: 40,
            index: 0,
            data: &[0; 40],
        },
    }))
}

fn hello(session: SessionId) -> Vec<u8> {
    encode(&Bottle::Hello(Hello {
        session,
        seq: 5,
        state: None,
    }))
}

/// The shape of an answer: its kind and length.
fn shapes(packets: &[Packet]) -> Vec<(&'static str, usize)> {
    packets.iter().map(|p| (p.kind(), p.bytes.len())).collect()
}

/// Stats as they should be after a refused bottle: only the input, the refusal's own
/// counter and the answers not sent may move.
fn besides_refusal(mut after: Stats, before: &Stats) -> Stats {
    after.received = before.received;
    after.unanswered = before.unanswered;
    after.wrong_link = before.wrong_link;
    after.unknown_session = before.unknown_session;
    after
}

#[test]
fn a_session_id_guessed_from_another_link_gets_the_answer_of_a_wrong_guess() {
    let mut lab = Lab::settled();
    let live = lab.ac().session_of(DeviceId(0)).unwrap();
    // Same varint length, another session.
    let wrong = SessionId(live.0 ^ 0x5a5a);
    let before = lab.ac().snapshot();
    let stats = *lab.ac().stats();
    let mut answers = Vec::new();
    for (k, bytes) in [state(live), state(wrong), hello(live), hello(wrong)]
        .iter()
        .enumerate()
    {
        let from = LinkId(300 + k as u64);
        let since = lab.wire.len();
        let r = lab.inject_to_ac(from, bytes);
        let want = match k % 2 {
            0 => InputError::WrongLink,
            _ => InputError::UnknownSession,
        };
        assert_eq!(r, Err(want));
        answers.push(shapes(&lab.answers_to(from, since)));
    }
    assert_eq!(answers[0], answers[1], "a long bottle: the same REJECT");
    assert_eq!(answers[0], [("reject", answers[0][0].1)]);
    assert_eq!(answers[2], answers[3], "a short one: the same silence");
    assert!(answers[2].is_empty());
    assert_eq!(lab.ac().snapshot(), before);
    let after = *lab.ac().stats();
    assert_eq!(after.wrong_link, stats.wrong_link + 2);
    assert_eq!(besides_refusal(after, &stats), stats);
}

#[test]
fn a_good_bye_from_another_link_ends_nothing() {
    let mut lab = Lab::settled();
    let live = lab.ac().session_of(DeviceId(1)).unwrap();
    let bye = encode(&Bottle::GoodBye(GoodBye { session: live }));
    let before = lab.ac().snapshot();
    let stats = *lab.ac().stats();
    let since = lab.wire.len();
    assert_eq!(
        lab.inject_to_ac(LinkId(300), &bye),
        Err(InputError::WrongLink)
    );
    // Answered as a GOOD_BYE of a session that is over would be.
    let unknown = encode(&Bottle::GoodBye(GoodBye {
        session: SessionId(live.0 ^ 0x5a5a),
    }));
    assert_eq!(lab.inject_to_ac(LinkId(301), &unknown), Ok(()));
    assert_eq!(
        shapes(&lab.answers_to(LinkId(300), since)),
        shapes(&lab.answers_to(LinkId(301), since))
    );
    assert_eq!(lab.ac().snapshot(), before);
    lab.run(1_000);
    assert_eq!(lab.ac().session_of(DeviceId(1)), Some(live));
    assert_eq!(
        lab.ac().placement(ComputationId(1)),
        Some(Placement::Running(DeviceId(1)))
    );
    assert!(lab
        .ac_events_where(|e| matches!(
            e,
            ControllerEvent::DeviceLeft { .. } | ControllerEvent::ComputationStopped { .. }
        ))
        .is_empty());
    assert_eq!(lab.ac().stats().wrong_link, stats.wrong_link + 1);
}

#[test]
fn without_fencing_a_device_whose_session_is_unknown_is_still_told_so() {
    let mut lab = Lab::new(1, |c| c.fencing = false);
    lab.run(100);
    let old = lab.ac().session_of(DeviceId(0)).unwrap();
    // Its lease never runs out: only a REJECT tells it that its session is unknown where
    // its bottles now come from.
    let new = LinkId(77);
    let dev0 = LinkId(1);
    lab.set_filter(move |p| {
        if p.from == dev0 {
            p.from = new;
        }
        if p.to == new {
            p.to = dev0;
        }
        pcxses_tests::lab::Verdict::Deliver
    });
    lab.run(1_000);
    let now = lab.ac().session_of(DeviceId(0)).unwrap();
    assert_ne!(now, old, "the device joined again");
    assert!(lab.sent("reject").iter().any(|p| p.to == new));
    // Tiny undecodable input still gets nothing.
    let since = lab.wire.len();
    assert!(lab.inject_to_ac(LinkId(7_777), &[0x02]).is_err());
    assert!(lab.answers_to(LinkId(7_777), since).is_empty());
}

#[test]
fn a_refused_bottle_names_the_device_it_claims_and_changes_nothing() {
    let mut lab = Lab::settled();
    let stats = *lab.ac().stats();
    let gm = unknown_name();
    assert_eq!(lab.ac().claimed_device(&gm), Some("nobody"));
    // A bottle of dev1's live session, from a stranger's link: refused, named dev1.
    let session = lab.device(1).session().unwrap();
    let from_elsewhere = hello(session);
    assert!(lab.inject_to_ac(LinkId(4_242), &from_elsewhere).is_err());
    assert_eq!(lab.ac().claimed_device(&from_elsewhere), Some("dev1"));
    // A session no device holds, and junk: no device.
    assert_eq!(
        lab.ac().claimed_device(&hello(SessionId(0xdead_beef))),
        None
    );
    assert_eq!(lab.ac().claimed_device(&[0x01, 0xff, 0xff]), None);
    assert_eq!(lab.ac().claimed_device(&[]), None);
    // Naming changed nothing beyond the one refusal counted.
    let after = *lab.ac().stats();
    assert_eq!(after.received, stats.received + 1);
    assert_eq!(after.rejected(), stats.rejected() + 1);
}
