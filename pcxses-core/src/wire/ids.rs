//! Small fixed-size identifiers and digests that appear in bottles.

use core::fmt;

use serde::ser::SerializeTuple;
use serde::{Deserialize, Serialize, Serializer};

use super::decode::{Decode, Reader};
use super::encode::{Encode, Writer};
use super::layout::wire_fields;

/// Names one session: one incarnation of one device at the AC.
///
/// Encoded as 4 little-endian bytes. The AC chooses it: a keyed permutation of the device
/// and a per-device generation, so that a device that restarts gets a new id and the ids
/// of a device's sessions cannot be guessed without the AC's key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u32);

impl SessionId {
    /// The id that names no session: used before a session exists.
    pub const NONE: SessionId = SessionId(0);
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl Serialize for SessionId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.to_le_bytes().serialize(s)
    }
}

/// Random bytes a device draws for each incarnation and sends in GOOD_MORNING.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JoinNonce(pub [u8; 8]);

/// A SHA-256 digest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Digest(pub [u8; 32]);

/// An Ed25519 signature (64 bytes), encoded as 64 raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(64)?;
        for b in &self.0 {
            t.serialize_element(b)?;
        }
        t.end()
    }
}

impl Encode for SessionId {
    fn encode(&self, w: &mut Writer<'_>) {
        w.raw(&self.0.to_le_bytes());
    }
}

impl Decode<'_> for SessionId {
    fn decode(r: &mut Reader<'_>) -> SessionId {
        SessionId(u32::from_le_bytes(<[u8; 4]>::decode(r)))
    }
}

wire_fields!(JoinNonce(0), Digest(0), Signature(0));
