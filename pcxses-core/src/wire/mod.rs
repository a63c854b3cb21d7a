//! The wire format: every type that is part of a bottle's encoding, and the strict codec.
//!
//! Every message is a [`Bottle`]: one protocol version byte
//! ([`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION)), then the bottle as a postcard enum whose
//! variant is the message type. The field order of each struct is the wire order;
//! `docs/PROTOCOL.md` in the repository is the normative encoding. A decoded bottle borrows
//! names and payloads from its input, and decoding enforces the [`Limits`](crate::Limits)
//! before it buffers anything.

pub(crate) mod bottle;
pub(crate) mod codec;
pub(crate) mod decode;
pub(crate) mod encode;
pub(crate) mod ids;
mod layout;
pub(crate) mod manifest;
pub(crate) mod seq;

pub use bottle::{
    Bottle, Challenge, ChunkAck, GoodBye, GoodByeAck, GoodMorning, GoodMorningAck, Hello, HelloAck,
    Morph, MorphAck, MorphFail, MorphFailReason, ObjectChunk, Progress, Reject, RejectReason,
    StateAck, StateBottle, StateChunk, StateMode,
};
pub use codec::{DecodeError, EncodeError};
pub use ids::{Digest, JoinNonce, Signature};
pub use manifest::{Manifest, ObjectEntry, StateEntry};
pub use seq::BoundedSeq;
