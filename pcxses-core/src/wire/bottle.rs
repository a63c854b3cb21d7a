//! The Bottle: every message of the protocol, as borrowed Rust types.
//!
//! A decoded [`Bottle`] borrows names and payloads from the buffer it was decoded from, so
//! decoding allocates nothing. The field order of each struct is the wire order; see
//! `docs/PROTOCOL.md` for the normative encoding.

use serde::{Deserialize, Serialize};

use super::ids::{JoinNonce, SessionId, Signature};
use super::layout::{wire_fields, wire_units, wire_variants};
use super::seq::BoundedSeq;
use crate::limits::{MAX_HOSTED, MAX_NAME_LEN};

/// One protocol message. The enum discriminant is the paper's "message type".
///
/// The variant order is part of the wire format: new variants are only ever appended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Bottle<'a> {
    /// Device → AC: join (or re-join) and propose parameters.
    GoodMorning(GoodMorning<'a>),
    /// AC → device: the join is accepted, with the negotiated parameters.
    GoodMorningAck(GoodMorningAck<'a>),
    /// Device → AC: liveness, optionally carrying a state chunk (JOINED mode,
    /// [`StateMode::InHello`]).
    Hello(Hello<'a>),
    /// AC → device: a HELLO was received; renews the device's fence lease.
    HelloAck(HelloAck),
    /// Device → AC: a state chunk sent on its own (SPLIT mode, [`StateMode::Separate`], or
    /// the rest of a large state).
    State(StateBottle<'a>),
    /// AC → device: which chunks of one state version the AC holds.
    StateAck(StateAck),
    /// AC → target: the MORPH header, opening a migration.
    Morph(Morph<'a>),
    /// AC → target: one chunk of the MORPH stream (object definitions, then the LKGS).
    ObjectChunk(ObjectChunk<'a>),
    /// Target → AC: which chunks of a MORPH stream the target holds.
    ChunkAck(ChunkAck),
    /// Target → AC: the computation was verified and started ("MORPH ack").
    MorphAck(MorphAck),
    /// Target → AC: the migration was refused or failed ("MORPH fail").
    MorphFail(MorphFail),
    /// Either side: the session ends gracefully; the sender's peer is not to be recovered.
    GoodBye(GoodBye),
    /// Either side: answers a [`Bottle::GoodBye`].
    GoodByeAck(GoodByeAck),
    /// AC → device: a bottle was refused, with the reason.
    Reject(Reject),
    /// AC → device, pre-shared-key mode: answer this challenge to join.
    Challenge(Challenge),
}

wire_variants!(Bottle<'a> {
    GoodMorning, GoodMorningAck, Hello, HelloAck, State, StateAck, Morph, ObjectChunk, ChunkAck,
    MorphAck, MorphFail, GoodBye, GoodByeAck, Reject, Challenge,
} else Bottle::GoodBye(GoodBye { session: SessionId::NONE }));

/// Pre-shared-key mode: the AC's answer to a plain GOOD_MORNING (see [`crate::psk`]).
///
#[cfg_attr(not(feature = "psk"), doc = "[`crate::psk`]: crate#cargo-features")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Challenge {
    /// The join nonce of the GOOD_MORNING answered.
    pub nonce: JoinNonce,
    /// What the device's sealed GOOD_MORNING must carry and its session key is derived
    /// from.
    pub challenge: [u8; 16],
}

wire_fields!(Challenge { nonce, challenge });

wire_units! {
    /// How state travels during the PARTY phase: the paper's JOINED_MODE and SPLIT_MODE.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum StateMode {
        /// State rides on HELLO bottles (the paper's JOINED_MODE, the common case).
        InHello,
        /// State travels in STATE bottles of its own (the paper's SPLIT_MODE).
        Separate,
    }
}

/// GOOD_MORNING from a device: who it is and the parameters it proposes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GoodMorning<'a> {
    /// The device's configured name, at most [`MAX_NAME_LEN`] bytes of UTF-8.
    pub device: &'a str,
    /// Fresh random bytes for this incarnation of the device; echoed by the AC and bound
    /// into every MORPH manifest sent to this incarnation.
    pub nonce: JoinNonce,
    /// The proposed state mode.
    pub mode: StateMode,
    /// Proposed HELLO interval in milliseconds.
    pub hello_ms: u32,
    /// Proposed dead interval in milliseconds.
    pub dead_ms: u32,
    /// The largest bottle the device accepts, in bytes (its MTU or frame limit).
    pub max_bottle: u16,
}

wire_fields!(GoodMorning<'a> { device, nonce, mode, hello_ms, dead_ms, max_bottle });

/// The AC's answer to GOOD_MORNING: the session and the negotiated parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GoodMorningAck<'a> {
    /// The session the AC opened for this incarnation.
    pub session: SessionId,
    /// The nonce of the GOOD_MORNING this answers.
    pub nonce: JoinNonce,
    /// The negotiated state mode.
    pub mode: StateMode,
    /// Negotiated HELLO interval in milliseconds.
    pub hello_ms: u32,
    /// Negotiated dead interval in milliseconds.
    pub dead_ms: u32,
    /// Fence interval in milliseconds: a device that has had no HELLO acknowledged for this
    /// long stops its computations. `0` disables fencing.
    pub fence_ms: u32,
    /// Payload bytes per chunk for every segmented transfer of this session.
    pub chunk_size: u16,
    /// The computations the AC wants this incarnation to run. A computation's position in
    /// this list is its handle in STATE chunks.
    pub run: BoundedSeq<&'a str, MAX_HOSTED>,
}

wire_fields!(GoodMorningAck<'a> { session, nonce, mode, hello_ms, dead_ms, fence_ms, chunk_size, run });

/// HELLO: the device is alive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hello<'a> {
    /// The sender's session.
    pub session: SessionId,
    /// HELLO sequence number, wrapping; echoed in [`HelloAck`].
    pub seq: u16,
    /// A state chunk, in JOINED mode ([`StateMode::InHello`]).
    pub state: Option<StateChunk<'a>>,
}

wire_fields!(Hello<'a> { session, seq, state });

/// Acknowledges one HELLO.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HelloAck {
    /// The device's session.
    pub session: SessionId,
    /// The sequence number of the HELLO acknowledged.
    pub seq: u16,
}

wire_fields!(HelloAck { session, seq });

/// The first byte of an OBJECT_CHUNK's encoding after the version byte: its variant's
/// index in [`Bottle`].
pub(crate) const OBJECT_CHUNK_TAG: u8 = 7;

/// One chunk of one version of a computation's state (its LKGS candidate).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateChunk<'a> {
    /// Which hosted computation: its position in [`GoodMorningAck::run`], or the handle a
    /// MORPH assigned.
    pub handle: u16,
    /// State version, increasing per computation and session.
    pub version: u32,
    /// Length of the whole state in bytes.
    pub total_len: u32,
    /// Chunk index; the chunk covers bytes `index * chunk_size ..` of the state.
    pub index: u32,
    /// The chunk's bytes: `chunk_size` bytes, except for the last chunk.
    #[serde(with = "serde_bytes")]
    pub data: &'a [u8],
}

wire_fields!(StateChunk<'a> { handle, version, total_len, index, data });

/// STATE: a state chunk sent on its own. It never resets the dead timer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateBottle<'a> {
    /// The sender's session.
    pub session: SessionId,
    /// The chunk.
    pub chunk: StateChunk<'a>,
}

wire_fields!(StateBottle<'a> { session, chunk });

/// Selective acknowledgement of a segmented transfer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Progress {
    /// Every chunk with a lower index has been received.
    pub next: u32,
    /// Bit `i` set: chunk `next + 1 + i` has been received too.
    pub sack: u32,
}

wire_fields!(Progress { next, sack });

/// Acknowledges chunks of one state version; `progress.next == chunk count` means the AC
/// stored the state as the computation's LKGS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateAck {
    /// The device's session.
    pub session: SessionId,
    /// The computation's handle.
    pub handle: u16,
    /// The state version acknowledged.
    pub version: u32,
    /// What the AC holds of it.
    pub progress: Progress,
}

wire_fields!(StateAck {
    session,
    handle,
    version,
    progress
});

/// The MORPH header: opens the migration of one computation to the receiving device.
///
/// The manifest travels as the exact bytes that were signed, so the target can check the
/// signature before it parses anything in them (see [`Manifest`](super::manifest::Manifest)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Morph<'a> {
    /// The target's session.
    pub session: SessionId,
    /// Identifies this migration attempt within the session.
    pub morph: u32,
    /// The handle the computation gets on the target, for its STATE chunks.
    pub handle: u16,
    /// The encoded [`Manifest`](super::manifest::Manifest).
    #[serde(with = "serde_bytes")]
    pub manifest: &'a [u8],
    /// Ed25519 signature over `manifest` by the code-signing key, if signing is in use.
    pub signature: Option<Signature>,
}

wire_fields!(Morph<'a> { session, morph, handle, manifest, signature });

/// One chunk of a MORPH stream: the objects in manifest order, then the LKGS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObjectChunk<'a> {
    /// The target's session.
    pub session: SessionId,
    /// The migration this chunk belongs to.
    pub morph: u32,
    /// Chunk index within the stream.
    pub index: u32,
    /// The chunk's bytes: `chunk_size` bytes, except for the last chunk.
    #[serde(with = "serde_bytes")]
    pub data: &'a [u8],
}

wire_fields!(ObjectChunk<'a> { session, morph, index, data });

/// Acknowledges chunks of a MORPH stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChunkAck {
    /// The target's session.
    pub session: SessionId,
    /// The migration.
    pub morph: u32,
    /// What the target holds of the stream.
    pub progress: Progress,
}

wire_fields!(ChunkAck {
    session,
    morph,
    progress
});

/// MORPH ack: the target verified everything and started the computation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MorphAck {
    /// The target's session.
    pub session: SessionId,
    /// The migration.
    pub morph: u32,
}

wire_fields!(MorphAck { session, morph });

/// MORPH fail: the target refused the migration or could not start the computation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MorphFail {
    /// The target's session.
    pub session: SessionId,
    /// The migration.
    pub morph: u32,
    /// Why.
    pub reason: MorphFailReason,
}

wire_fields!(MorphFail {
    session,
    morph,
    reason
});

wire_units! {
    /// Why a target refused a MORPH.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
    #[non_exhaustive]
    pub enum MorphFailReason {
        /// The manifest's signature did not verify, or a signature was required and missing.
        BadSignature,
        /// The manifest's sequence number was not above the last one accepted.
        StaleSequence,
        /// The manifest names another device or another incarnation.
        WrongTarget,
        /// An object or the LKGS did not match its size or SHA-256 in the manifest.
        DigestMismatch,
        /// The manifest or the stream was malformed or exceeded a limit.
        Malformed,
        /// The target has no room for another computation.
        Busy,
        /// The application refused to install, or the computation failed to start.
        Refused,
        /// The transfer stalled and the target gave up on it.
        TimedOut,
    }
}

/// GOOD_BYE: the sender ends the session gracefully.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GoodBye {
    /// The session that ends.
    pub session: SessionId,
}

wire_fields!(GoodBye { session });

/// Answers GOOD_BYE.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GoodByeAck {
    /// The session that ended.
    pub session: SessionId,
}

wire_fields!(GoodByeAck { session });

/// The AC refuses a bottle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reject {
    /// The session the refused bottle named, or [`SessionId::NONE`] for a GOOD_MORNING.
    pub session: SessionId,
    /// For a refused GOOD_MORNING, its nonce; otherwise zero.
    pub nonce: JoinNonce,
    /// Why.
    pub reason: RejectReason,
}

wire_fields!(Reject {
    session,
    nonce,
    reason
});

wire_units! {
    /// Why the AC refused a bottle.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
    #[non_exhaustive]
    pub enum RejectReason {
        /// The device name is not in the AC's registry.
        UnknownDevice,
        /// The session is not (or no longer) known; the device should join again.
        UnknownSession,
        /// The AC declared this session dead and moved its computations: stop them.
        Replaced,
        /// The protocol version byte is not one the AC speaks.
        BadVersion,
        /// The bottle failed authentication.
        Unauthorized,
        /// The bottle could not be decoded or broke a limit.
        Malformed,
        /// Pre-shared-key mode: the AC restarted and refuses the counters it may have accepted
        /// before; the device jumps its send counter ahead by [`crate::psk::RESYNC_PERIOD`] and
        /// sends again at once.
        ///
        #[cfg_attr(
            not(feature = "psk"),
            doc = "[`crate::psk::RESYNC_PERIOD`]: crate#cargo-features"
        )]
        Resync,
    }
}

impl Bottle<'_> {
    /// The bottle's message type, as a stable lowercase name (`"hello"`, `"morph"`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Bottle::GoodMorning(_) => "good_morning",
            Bottle::GoodMorningAck(_) => "good_morning_ack",
            Bottle::Hello(_) => "hello",
            Bottle::HelloAck(_) => "hello_ack",
            Bottle::State(_) => "state",
            Bottle::StateAck(_) => "state_ack",
            Bottle::Morph(_) => "morph",
            Bottle::ObjectChunk(_) => "object_chunk",
            Bottle::ChunkAck(_) => "chunk_ack",
            Bottle::MorphAck(_) => "morph_ack",
            Bottle::MorphFail(_) => "morph_fail",
            Bottle::GoodBye(_) => "good_bye",
            Bottle::GoodByeAck(_) => "good_bye_ack",
            Bottle::Reject(_) => "reject",
            Bottle::Challenge(_) => "challenge",
        }
    }

    /// The session a bottle names; `None` for GOOD_MORNING, which opens one, and
    /// CHALLENGE, which precedes it.
    pub fn session(&self) -> Option<SessionId> {
        Some(match self {
            Bottle::GoodMorning(_) | Bottle::Challenge(_) => return None,
            Bottle::GoodMorningAck(b) => b.session,
            Bottle::Hello(b) => b.session,
            Bottle::HelloAck(b) => b.session,
            Bottle::State(b) => b.session,
            Bottle::StateAck(b) => b.session,
            Bottle::Morph(b) => b.session,
            Bottle::ObjectChunk(b) => b.session,
            Bottle::ChunkAck(b) => b.session,
            Bottle::MorphAck(b) => b.session,
            Bottle::MorphFail(b) => b.session,
            Bottle::GoodBye(b) => b.session,
            Bottle::GoodByeAck(b) => b.session,
            Bottle::Reject(b) => b.session,
        })
    }

    /// Checks the limits that the types alone do not express: name lengths and UTF-8 names
    /// that are not empty.
    pub(crate) fn check_names(&self) -> bool {
        match self {
            Bottle::GoodMorning(b) => name_ok(b.device),
            Bottle::GoodMorningAck(b) => b.run.iter().all(|n| name_ok(n)),
            _ => true,
        }
    }
}

/// Whether `name` is acceptable as a device, computation or object name.
pub(crate) fn name_ok(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN
}
