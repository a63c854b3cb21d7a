//! The MORPH manifest: what a target is asked to run, and the digests that prove it.

use serde::Serialize;

use super::bottle::name_ok;
use super::codec::{DecodeError, EncodeError};
use super::decode::{Decode, Reader};
use super::encode::{Encode, Writer};
use super::ids::{Digest, JoinNonce};
use super::layout::wire_fields;
use super::seq::BoundedSeq;
use crate::limits::{Limits, MAX_OBJECTS};

/// Describes one migration: the computation, the intended target, and the size and
/// SHA-256 of every object and of the LKGS that follow in the MORPH stream.
///
/// The manifest is encoded on its own (postcard, no version byte: it travels inside a
/// versioned [`Morph`](super::bottle::Morph)) and signed as those exact bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Manifest<'a> {
    /// The computation's name.
    pub computation: &'a str,
    /// Monotonic sequence number; a target refuses one not above the last it accepted
    /// for this computation.
    pub sequence: u64,
    /// The device that is to run the computation.
    pub target: &'a str,
    /// The target's join nonce: binds the manifest to one incarnation of the target.
    pub nonce: JoinNonce,
    /// The device whose computation this was (the paper's `^` field).
    pub replaces: &'a str,
    /// The objects, in stream order.
    pub objects: BoundedSeq<ObjectEntry<'a>, MAX_OBJECTS>,
    /// The LKGS, which follows the objects in the stream.
    pub state: StateEntry,
}

wire_fields!(Manifest<'a> { computation, sequence, target, nonce, replaces, objects, state });

/// One object definition in a MORPH stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObjectEntry<'a> {
    /// The object's identifier in the AC's repository.
    pub id: &'a str,
    /// Its length in bytes.
    pub size: u32,
    /// Its SHA-256.
    pub sha256: Digest,
    /// Whether the target invokes this object once installed (the paper's invoke flags).
    pub invoke: bool,
}

wire_fields!(ObjectEntry<'a> { id, size, sha256, invoke });

/// The LKGS in a MORPH stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StateEntry {
    /// The state version the AC acknowledged.
    pub version: u32,
    /// Its length in bytes.
    pub size: u32,
    /// Its SHA-256.
    pub sha256: Digest,
}

wire_fields!(StateEntry {
    version,
    size,
    sha256
});

impl<'a> Manifest<'a> {
    /// Length of the MORPH stream the manifest describes, if it fits in a `u32`.
    pub fn stream_len(&self) -> Option<u32> {
        self.objects
            .iter()
            .try_fold(self.state.size, |acc, o| acc.checked_add(o.size))
    }

    /// Encodes the manifest into `buf`, returning the length written.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        if !self.names_ok() {
            return Err(EncodeError::Invalid("name"));
        }
        let mut w = Writer::to_slice(buf);
        Encode::encode(self, &mut w);
        w.finish().ok_or(EncodeError::BufferFull)
    }

    /// Decodes a manifest strictly: trailing bytes, a varint not in its shortest form, bad
    /// names and a stream longer than `limits.max_transfer` or state longer than
    /// `limits.max_state` are errors.
    pub fn decode(bytes: &'a [u8], limits: &Limits) -> Result<Manifest<'a>, DecodeError> {
        let mut r = Reader::new(bytes);
        let m: Manifest<'a> = Decode::decode(&mut r);
        r.finish()?;
        if !m.names_ok() {
            return Err(DecodeError::Limit("name"));
        }
        if m.state.size > limits.max_state {
            return Err(DecodeError::Limit("state size"));
        }
        match m.stream_len() {
            Some(n) if n <= limits.max_transfer => Ok(m),
            _ => Err(DecodeError::Limit("stream length")),
        }
    }

    fn names_ok(&self) -> bool {
        name_ok(self.computation)
            && name_ok(self.target)
            && name_ok(self.replaces)
            && self.objects.iter().all(|o| name_ok(o.id))
    }
}
