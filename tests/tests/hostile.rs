//! Every malformed or out-of-phase bottle: a typed error (or, where the protocol says so,
//! an answer), counted, no state change, no panic.

use pcxses_core::controller::DeviceId;
use pcxses_core::wire::{
    Bottle, ChunkAck, GoodMorning, GoodMorningAck, Hello, HelloAck, JoinNonce, Morph, MorphAck,
    MorphFail, MorphFailReason, ObjectChunk, Progress, Reject, RejectReason, StateAck, StateBottle,
    StateChunk, StateMode,
};
use pcxses_core::{InputError, LinkId, SessionId};
use pcxses_tests::lab::{encode, Lab};
use proptest::prelude::*;

/// Bottles no AC may accept: device-bound kinds, unknown sessions, unknown names, acks
/// for nothing in flight, chunks for computations not hosted, chunks that cannot fit.
fn hostile_to_ac(live: SessionId, s: u32, n: u32, data: &[u8], kind: u8) -> Vec<u8> {
    let other = SessionId(s | 1);
    let session = if other == live {
        SessionId(s ^ 2)
    } else {
        other
    };
    let chunk = StateChunk {
        handle: 0,
        version: n,
        total_len: data.len() as u32,
        index: 0,
        data,
    };
    encode(&match kind % 14 {
        0 => Bottle::GoodMorningAck(GoodMorningAck {
            session,
            nonce: JoinNonce::default(),
            mode: StateMode::InHello,
            hello_ms: n,
            dead_ms: n,
            fence_ms: n,
            chunk_size: 64,
            run: Default::default(),
        }),
        1 => Bottle::HelloAck(HelloAck {
            session: live,
            seq: n as u16,
        }),
        2 => Bottle::StateAck(StateAck {
            session: live,
            handle: 0,
            version: n,
            progress: Progress::default(),
        }),
        3 => Bottle::Morph(Morph {
            session: live,
            morph: n,
            handle: 1,
            manifest: data,
            signature: None,
        }),
        4 => Bottle::ObjectChunk(ObjectChunk {
            session: live,
            morph: n,
            index: 0,
            data,
        }),
        5 => Bottle::Reject(Reject {
            session: live,
            nonce: JoinNonce::default(),
            reason: RejectReason::Replaced,
        }),
        6 => Bottle::Hello(Hello {
            session,
            seq: 1,
            state: None,
        }),
        7 => Bottle::State(StateBottle { session, chunk }),
        8 => Bottle::State(StateBottle {
            session: live,
            chunk: StateChunk { handle: 7, ..chunk },
        }),
        9 => Bottle::State(StateBottle {
            session: live,
            chunk: StateChunk { index: 5, ..chunk },
        }),
        10 => Bottle::ChunkAck(ChunkAck {
            session: live,
            morph: n,
            progress: Progress::default(),
        }),
        11 => Bottle::MorphAck(MorphAck {
            session: live,
            morph: n,
        }),
        12 => Bottle::MorphFail(MorphFail {
            session: live,
            morph: n,
            reason: MorphFailReason::Busy,
        }),
        _ => Bottle::GoodMorning(GoodMorning {
            device: "nobody",
            nonce: JoinNonce::default(),
            mode: StateMode::Separate,
            hello_ms: n,
            dead_ms: n,
            max_bottle: 1200,
        }),
    })
}

/// The link of device 0, whose live session the hostile bottles name: they get past the
/// check of the link and are refused for what they are.
const DEV0: LinkId = LinkId(1);

fn check_ac_refuses(lab: &mut Lab, from: LinkId, bytes: &[u8]) -> Result<(), TestCaseError> {
    let before = lab.ac().snapshot();
    let rejected = lab.ac().stats().rejected();
    let since = lab.wire.len();
    let r = lab.inject_to_ac(from, bytes);
    prop_assert!(r.is_err(), "accepted {:02x?}", bytes);
    prop_assert_eq!(lab.ac().stats().rejected(), rejected + 1);
    prop_assert_eq!(lab.ac().snapshot(), before);
    if from != DEV0 {
        // Not the link of any session: the answer reflects nothing larger.
        for answer in lab.answers_to(from, since) {
            prop_assert!(answer.bytes.len() <= bytes.len(), "{}", answer.kind());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_ac_refuses_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut lab = Lab::settled();
        // Random bytes may decode into something valid; only those that fail are checked.
        if pcxses_core::wire::Bottle::decode(&bytes, &pcxses_core::Limits::DEFAULT).is_err() {
            check_ac_refuses(&mut lab, LinkId(9), &bytes)?;
        }
    }

    #[test]
    fn the_ac_refuses_out_of_phase_bottles(
        s in any::<u32>(),
        n in 1000u32..,
        data in prop::collection::vec(any::<u8>(), 0..64),
        kind in 0u8..14,
    ) {
        let mut lab = Lab::settled();
        let live = lab.ac().session_of(DeviceId(0)).unwrap();
        let bytes = hostile_to_ac(live, s, n, &data, kind);
        check_ac_refuses(&mut lab, DEV0, &bytes)?;
        check_ac_refuses(&mut lab, LinkId(9), &bytes)?;
    }

    #[test]
    fn a_device_refuses_what_is_not_for_it(
        s in any::<u32>(),
        n in any::<u32>(),
        data in prop::collection::vec(any::<u8>(), 0..64),
        kind in 0u8..14,
        garbage in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut lab = Lab::settled();
        let live = lab.device(1).session().unwrap();
        let session = if SessionId(s) == live { SessionId(s ^ 1) } else { SessionId(s) };
        let chunk = StateChunk { handle: 0, version: n, total_len: data.len() as u32, index: 0, data: &data };
        let bytes = match kind % 8 {
            0 => encode(&Bottle::Hello(Hello { session: live, seq: 1, state: None })),
            1 => encode(&Bottle::State(StateBottle { session: live, chunk })),
            2 => encode(&Bottle::HelloAck(HelloAck { session, seq: n as u16 })),
            3 => encode(&Bottle::Morph(Morph { session, morph: n, handle: 1, manifest: &data, signature: None })),
            4 => encode(&Bottle::ObjectChunk(ObjectChunk { session: live, morph: n | 1 << 31, index: 0, data: &data })),
            5 => encode(&Bottle::StateAck(StateAck { session: live, handle: 9, version: n, progress: Progress::default() })),
            6 => encode(&Bottle::MorphAck(MorphAck { session: live, morph: n })),
            _ => garbage.clone(),
        };
        if kind % 8 == 7 && pcxses_core::wire::Bottle::decode(&bytes, &pcxses_core::Limits::DEFAULT).is_ok() {
            return Ok(());
        }
        let running: Vec<String> = lab.device(1).running().map(String::from).collect();
        let rejected = lab.device(1).stats().rejected();
        let r = lab.inject_to_device(1, &bytes);
        prop_assert!(r.is_err(), "accepted kind {}", kind);
        prop_assert_eq!(lab.device(1).stats().rejected(), rejected + 1);
        prop_assert_eq!(lab.device(1).session(), Some(live));
        let after: Vec<String> = lab.device(1).running().map(String::from).collect();
        prop_assert_eq!(after, running);
        prop_assert!(lab.device_events[1].iter().all(|(_, e)| !matches!(e, pcxses_core::DeviceEvent::Install(_))));
    }
}

#[test]
fn refusals_are_typed() {
    let mut lab = Lab::settled();
    let live = lab.ac().session_of(DeviceId(0)).unwrap();
    let cases = [
        (6u8, InputError::UnknownSession),
        (0, InputError::OutOfPhase("bottle for a device")),
        (
            8,
            InputError::OutOfPhase("state for a computation not hosted"),
        ),
        (9, InputError::BadChunk),
        (11, InputError::OutOfPhase("MORPH ack for no MORPH")),
        (13, InputError::UnknownDevice),
    ];
    for (kind, want) in cases {
        let bytes = hostile_to_ac(live, 0x1234_5678, 5_000, b"data", kind);
        assert_eq!(lab.inject_to_ac(DEV0, &bytes), Err(want), "kind {kind}");
    }
    let stats = *lab.ac().stats();
    assert_eq!(
        (
            stats.unknown_session,
            stats.unknown_device,
            stats.bad_chunk,
            stats.out_of_phase
        ),
        (1, 1, 1, 3)
    );
}
