//! One realistic bottle of every kind, shared by the golden-vector tests, the malformed
//! input tests and the `wire_sizes` example. Varint fields hold their largest realistic
//! values, so sizes are not flattered by small numbers.

use pcxses_core::signing::CodeSigner;
use pcxses_core::wire::{
    Bottle, BoundedSeq, Challenge, ChunkAck, Digest, GoodBye, GoodByeAck, GoodMorning,
    GoodMorningAck, Hello, HelloAck, JoinNonce, Manifest, Morph, MorphAck, MorphFail,
    MorphFailReason, ObjectChunk, ObjectEntry, Progress, Reject, RejectReason, StateAck,
    StateBottle, StateChunk, StateEntry, StateMode,
};
use pcxses_core::SessionId;

pub const SESSION: SessionId = SessionId(0x9e37_79b9);
pub const NONCE: JoinNonce = JoinNonce([0xa5, 0x5a, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06]);
pub const STATE_16B: [u8; 16] = *b"pacman:score=420";
pub const CHUNK: [u8; 16] = [0x5c; 16];
/// The code-signing secret key (an Ed25519 seed) that signs the MORPH sample: a test key,
/// printed in PROTOCOL.md §10.
pub const CODE_SIGNING_SECRET: [u8; 32] = [0x07; 32];

/// Calls `f` with the name and value of every sample bottle.
pub fn for_each(mut f: impl FnMut(&str, &Bottle<'_>)) {
    let chunk16 = StateChunk {
        handle: 0,
        version: 70_000,
        total_len: 16,
        index: 0,
        data: &STATE_16B,
    };
    f(
        "good_morning",
        &Bottle::GoodMorning(GoodMorning {
            device: "pacman-cabinet-1", // 16 bytes
            nonce: NONCE,
            mode: StateMode::InHello,
            hello_ms: 1_000,
            dead_ms: 3_000,
            max_bottle: 1_200,
        }),
    );
    let mut run = BoundedSeq::new();
    run.push("pacman").unwrap();
    f(
        "good_morning_ack",
        &Bottle::GoodMorningAck(GoodMorningAck {
            session: SESSION,
            nonce: NONCE,
            mode: StateMode::InHello,
            hello_ms: 1_000,
            dead_ms: 3_000,
            fence_ms: 2_250,
            chunk_size: 1_024,
            run,
        }),
    );
    f(
        "hello",
        &Bottle::Hello(Hello {
            session: SESSION,
            seq: u16::MAX,
            state: None,
        }),
    );
    f(
        "hello_with_state_16B",
        &Bottle::Hello(Hello {
            session: SESSION,
            seq: u16::MAX,
            state: Some(chunk16.clone()),
        }),
    );
    f(
        "hello_ack",
        &Bottle::HelloAck(HelloAck {
            session: SESSION,
            seq: u16::MAX,
        }),
    );
    f(
        "state_16B",
        &Bottle::State(StateBottle {
            session: SESSION,
            chunk: chunk16,
        }),
    );
    f(
        "state_ack",
        &Bottle::StateAck(StateAck {
            session: SESSION,
            handle: 0,
            version: 70_000,
            progress: Progress { next: 1, sack: 0 },
        }),
    );

    let mut objects = BoundedSeq::new();
    objects
        .push(ObjectEntry {
            id: "pacman.wasm",
            size: 40_000,
            sha256: Digest([0x11; 32]),
            invoke: true,
        })
        .unwrap();
    let manifest = Manifest {
        computation: "pacman",
        sequence: 17,
        target: "runner",
        nonce: NONCE,
        replaces: "pacman-cabinet-1",
        objects,
        state: StateEntry {
            version: 70_000,
            size: 16,
            sha256: Digest([0x22; 32]),
        },
    };
    let mut manifest_buf = [0u8; 512];
    let manifest_len = manifest.encode(&mut manifest_buf).unwrap();
    f(
        "morph",
        &Bottle::Morph(Morph {
            session: SESSION,
            morph: 3,
            handle: 1,
            manifest: &manifest_buf[..manifest_len],
            signature: Some(
                CodeSigner::from_secret(CODE_SIGNING_SECRET).sign(&manifest_buf[..manifest_len]),
            ),
        }),
    );
    f(
        "object_chunk_16B",
        &Bottle::ObjectChunk(ObjectChunk {
            session: SESSION,
            morph: 3,
            index: 39,
            data: &CHUNK,
        }),
    );
    f(
        "chunk_ack",
        &Bottle::ChunkAck(ChunkAck {
            session: SESSION,
            morph: 3,
            progress: Progress {
                next: 40,
                sack: 0b101,
            },
        }),
    );
    f(
        "morph_ack",
        &Bottle::MorphAck(MorphAck {
            session: SESSION,
            morph: 3,
        }),
    );
    f(
        "morph_fail",
        &Bottle::MorphFail(MorphFail {
            session: SESSION,
            morph: 3,
            reason: MorphFailReason::DigestMismatch,
        }),
    );
    f("good_bye", &Bottle::GoodBye(GoodBye { session: SESSION }));
    f(
        "good_bye_ack",
        &Bottle::GoodByeAck(GoodByeAck { session: SESSION }),
    );
    f(
        "reject",
        &Bottle::Reject(Reject {
            session: SessionId::NONE,
            nonce: NONCE,
            reason: RejectReason::UnknownDevice,
        }),
    );
    f(
        "challenge",
        &Bottle::Challenge(Challenge {
            nonce: NONCE,
            challenge: [0x44; 16],
        }),
    );
}
