//! # pcxses-core
//!
//! The Sans-IO core of PCXSES, a protocol for survivable networks of embedded devices.
//! An Area Controller (AC) watches devices through heartbeats; when one dies, the AC moves
//! that device's essential computation — its object code and its last known good state
//! (LKGS) — onto another device, which verifies it and carries on.
//!
//! This crate holds the protocol and no I/O: it builds for `no_std` targets with `alloc`
//! (disable the default `std` feature) and never panics on a peer's bytes.
//!
//! ## The Bottle
//!
//! Every message is a [`Bottle`]: one protocol version byte, then the bottle as a postcard
//! enum. Decoding is strict and borrows from the input, so it allocates nothing for the
//! messages of the steady state.
//!
//! ```
//! use pcxses_core::{Bottle, Hello, Limits, SessionId, StateChunk};
//!
//! let state = [1, 2, 3, 4];
//! let hello = Bottle::Hello(Hello {
//!     session: SessionId(0x2a),
//!     seq: 9,
//!     state: Some(StateChunk { handle: 0, version: 3, total_len: 4, index: 0, data: &state }),
//! });
//!
//! // Encode into a buffer whose length is the limit (the MTU for datagrams).
//! let mut buf = [0u8; 1200];
//! let n = hello.encode(&mut buf)?;
//! assert_eq!(n, 17);
//!
//! // Decode strictly: bad versions, truncation, trailing bytes and broken limits are errors.
//! let back = Bottle::decode(&buf[..n], &Limits::DEFAULT)?;
//! assert_eq!(back, hello);
//! assert!(Bottle::decode(&buf[..n - 1], &Limits::DEFAULT).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Stream transports put each bottle behind a length prefix; see [`frame`]. The normative
//! wire format is `docs/PROTOCOL.md` in the repository.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod bottle;
mod codec;
pub mod controller;
pub mod device;
mod error;
pub mod frame;
mod ids;
mod io;
mod limits;
mod manifest;
pub mod policy;
mod repository;
mod rng;
mod stats;
mod sui;
mod time;
mod timer;
mod transfer;
mod wire_seq;

pub use bottle::{
    Bottle, ChunkAck, GoodBye, GoodByeAck, GoodMorning, GoodMorningAck, Hello, HelloAck, Mode,
    Morph, MorphAck, MorphFail, MorphFailReason, ObjectChunk, Progress, Reject, RejectReason,
    State, StateAck, StateChunk,
};
pub use codec::{DecodeError, EncodeError};
pub use controller::{Controller, ControllerConfig, ControllerEvent};
pub use device::{Device, DeviceConfig, DeviceEvent};
pub use error::{CommandError, InputError};
pub use ids::{Digest, JoinNonce, SessionId, Signature};
pub use io::{Input, LinkId, Output, Transmit};
pub use limits::{
    Limits, DEFAULT_MTU, MAX_BOTTLE_LEN, MAX_HOSTED, MAX_NAME_LEN, MAX_OBJECTS, PROTOCOL_VERSION,
};
pub use manifest::{Manifest, ObjectEntry, StateEntry};
pub use repository::{MemoryRepository, Repository};
pub use stats::Stats;
pub use sui::StateUpdateInterface;
pub use time::Instant;
pub use wire_seq::BoundedSeq;
