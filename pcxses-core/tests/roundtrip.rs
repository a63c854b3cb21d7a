//! Property tests: every bottle round-trips, and no strict prefix of an encoding decodes.

use pcxses_core::wire::{
    Bottle, BoundedSeq, Challenge, ChunkAck, Digest, GoodBye, GoodByeAck, GoodMorning,
    GoodMorningAck, Hello, HelloAck, JoinNonce, Manifest, Morph, MorphAck, MorphFail,
    MorphFailReason, ObjectChunk, ObjectEntry, Progress, Reject, RejectReason, Signature, StateAck,
    StateBottle, StateChunk, StateEntry, StateMode,
};
use pcxses_core::{
    Limits, SessionId, TransmitKind, MAX_BOTTLE_LEN, MAX_HOSTED, MAX_OBJECTS, PROTOCOL_VERSION,
};
use proptest::prelude::*;

/// Owned values from which a bottle of any kind is built by reference.
#[derive(Debug, Clone)]
struct Raw {
    kind: u8,
    session: u32,
    small: u16,
    nums: [u32; 4],
    nonce: [u8; 8],
    name: String,
    names: Vec<String>,
    data: Vec<u8>,
    flag: bool,
    signature: Option<[u8; 32]>,
}

fn raw() -> impl Strategy<Value = Raw> {
    (
        0u8..15,
        any::<u32>(),
        any::<u16>(),
        any::<[u32; 4]>(),
        any::<[u8; 8]>(),
        "[a-z0-9._-]{1,32}",
        prop::collection::vec("[a-zA-Z0-9]{1,32}", 0..=MAX_HOSTED),
        prop::collection::vec(any::<u8>(), 0..600),
        any::<bool>(),
        any::<Option<[u8; 32]>>(),
    )
        .prop_map(
            |(kind, session, small, nums, nonce, name, names, data, flag, signature)| Raw {
                kind,
                session,
                small,
                nums,
                nonce,
                name,
                names,
                data,
                flag,
                signature,
            },
        )
}

fn mode(flag: bool) -> StateMode {
    if flag {
        StateMode::Separate
    } else {
        StateMode::InHello
    }
}

const FAILS: [MorphFailReason; 8] = [
    MorphFailReason::BadSignature,
    MorphFailReason::StaleSequence,
    MorphFailReason::WrongTarget,
    MorphFailReason::DigestMismatch,
    MorphFailReason::Malformed,
    MorphFailReason::Busy,
    MorphFailReason::Refused,
    MorphFailReason::TimedOut,
];
const REJECTS: [RejectReason; 7] = [
    RejectReason::UnknownDevice,
    RejectReason::UnknownSession,
    RejectReason::Replaced,
    RejectReason::BadVersion,
    RejectReason::Unauthorized,
    RejectReason::Malformed,
    RejectReason::Resync,
];

fn build(r: &Raw) -> Bottle<'_> {
    let session = SessionId(r.session);
    let [a, b, c, d] = r.nums;
    // A state chunk whose declared total fits the default limits and covers the data.
    let chunk = StateChunk {
        handle: r.small,
        version: a,
        total_len: r.data.len() as u32 + c % 1024,
        index: b,
        data: &r.data,
    };
    let progress = Progress { next: b, sack: c };
    match r.kind {
        0 => Bottle::GoodMorning(GoodMorning {
            device: &r.name,
            nonce: JoinNonce(r.nonce),
            mode: mode(r.flag),
            hello_ms: a,
            dead_ms: b,
            max_bottle: r.small,
        }),
        1 => Bottle::GoodMorningAck(GoodMorningAck {
            session,
            nonce: JoinNonce(r.nonce),
            mode: mode(r.flag),
            hello_ms: a,
            dead_ms: b,
            fence_ms: c,
            chunk_size: r.small,
            run: BoundedSeq::from_vec(r.names.iter().map(String::as_str).collect()).unwrap(),
        }),
        2 => Bottle::Hello(Hello {
            session,
            seq: r.small,
            state: r.flag.then_some(chunk),
        }),
        3 => Bottle::HelloAck(HelloAck {
            session,
            seq: r.small,
        }),
        4 => Bottle::State(StateBottle { session, chunk }),
        5 => Bottle::StateAck(StateAck {
            session,
            handle: r.small,
            version: a,
            progress,
        }),
        6 => Bottle::Morph(Morph {
            session,
            morph: a,
            handle: r.small,
            manifest: &r.data,
            signature: r.signature.map(|h| {
                let mut s = [0u8; 64];
                s[..32].copy_from_slice(&h);
                s[32..].copy_from_slice(&h);
                Signature(s)
            }),
        }),
        7 => Bottle::ObjectChunk(ObjectChunk {
            session,
            morph: a,
            index: b,
            data: &r.data,
        }),
        8 => Bottle::ChunkAck(ChunkAck {
            session,
            morph: a,
            progress,
        }),
        9 => Bottle::MorphAck(MorphAck { session, morph: a }),
        10 => Bottle::MorphFail(MorphFail {
            session,
            morph: a,
            reason: FAILS[d as usize % FAILS.len()],
        }),
        11 => Bottle::GoodBye(GoodBye { session }),
        12 => Bottle::GoodByeAck(GoodByeAck { session }),
        13 => Bottle::Reject(Reject {
            session,
            nonce: JoinNonce(r.nonce),
            reason: REJECTS[d as usize % REJECTS.len()],
        }),
        _ => Bottle::Challenge(Challenge {
            nonce: JoinNonce(r.nonce),
            challenge: r.signature.map_or([0; 16], |h| h[..16].try_into().unwrap()),
        }),
    }
}

fn manifest(r: &Raw) -> Manifest<'_> {
    let [a, b, c, _] = r.nums;
    let mut objects = BoundedSeq::new();
    for (i, id) in r.names.iter().take(MAX_OBJECTS).enumerate() {
        objects
            .push(ObjectEntry {
                id,
                size: (a >> 12).wrapping_add(i as u32) % 100_000,
                sha256: Digest([i as u8; 32]),
                invoke: i == 0,
            })
            .unwrap();
    }
    Manifest {
        computation: &r.name,
        sequence: u64::from(b) << 20 | u64::from(c),
        target: &r.name,
        nonce: JoinNonce(r.nonce),
        replaces: &r.name,
        objects,
        state: StateEntry {
            version: a,
            size: c % 65_536,
            sha256: Digest(r.nonce.repeat(4).try_into().unwrap()),
        },
    }
}

const WIDE: Limits = Limits::datagram(MAX_BOTTLE_LEN);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn every_bottle_round_trips(r in raw()) {
        let bottle = build(&r);
        let mut buf = vec![0u8; MAX_BOTTLE_LEN];
        let n = bottle.encode(&mut buf).unwrap();
        prop_assert_eq!(Bottle::decode(&buf[..n], &WIDE), Ok(bottle.clone()));
        // The encoding is postcard's, as serde spells it.
        prop_assert_eq!(buf[0], PROTOCOL_VERSION);
        prop_assert_eq!(&buf[1..n], &postcard::to_allocvec(&bottle).unwrap()[..]);

        let mut via_vec = vec![0xee];
        prop_assert_eq!(bottle.encode_to_vec(&mut via_vec, MAX_BOTTLE_LEN), Ok(n));
        prop_assert_eq!(&via_vec[1..], &buf[..n]);
    }

    #[test]
    fn only_object_chunks_read_as_bulk_traffic(r in raw()) {
        let bottle = build(&r);
        let mut buf = vec![0u8; MAX_BOTTLE_LEN];
        let n = bottle.encode(&mut buf).unwrap();
        let bulk = matches!(bottle, Bottle::ObjectChunk(_));
        prop_assert_eq!(TransmitKind::of(&buf[..n]) == TransmitKind::Bulk, bulk);
    }

    #[test]
    fn no_strict_prefix_decodes(r in raw()) {
        let bottle = build(&r);
        let mut buf = vec![0u8; MAX_BOTTLE_LEN];
        let n = bottle.encode(&mut buf).unwrap();
        for cut in 0..n {
            prop_assert!(Bottle::decode(&buf[..cut], &WIDE).is_err(), "prefix {} of {} decoded", cut, n);
        }
    }

    #[test]
    fn a_too_small_buffer_is_an_error_not_a_panic(r in raw(), room in 0usize..64) {
        let bottle = build(&r);
        let mut buf = vec![0u8; MAX_BOTTLE_LEN];
        let n = bottle.encode(&mut buf).unwrap();
        let mut small = vec![0u8; room.min(n - 1)];
        prop_assert!(bottle.encode(&mut small).is_err());
    }

    #[test]
    fn every_manifest_round_trips(r in raw()) {
        let m = manifest(&r);
        let mut buf = vec![0u8; 4096];
        let n = m.encode(&mut buf).unwrap();
        prop_assert_eq!(&buf[..n], &postcard::to_allocvec(&m).unwrap()[..]);
        prop_assert_eq!(Manifest::decode(&buf[..n], &Limits::DEFAULT), Ok(m));
    }
}
