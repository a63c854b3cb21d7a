//! Encoding and strict decoding of bottles: one version byte, then postcard.

use alloc::vec::Vec;

use super::bottle::{Bottle, StateChunk};
use crate::limits::{Limits, PROTOCOL_VERSION};

/// Why a peer's bytes were not accepted as a bottle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// No bytes at all.
    #[error("empty bottle")]
    Empty,
    /// The version byte is not [`PROTOCOL_VERSION`].
    #[error("unsupported protocol version {0}")]
    Version(u8),
    /// The bottle is longer than [`Limits::max_bottle`].
    #[error("bottle of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Length received.
        len: usize,
        /// Limit in force.
        max: usize,
    },
    /// The bytes ended inside the bottle (or a declared length runs past them).
    #[error("bottle truncated")]
    Truncated,
    /// Bytes remained after a complete bottle.
    #[error("{0} trailing bytes after the bottle")]
    Trailing(usize),
    /// The bytes are not a valid encoding (bad tag, varint, UTF-8, option or list length).
    #[error("malformed bottle")]
    Malformed,
    /// A well-formed field breaks a protocol limit; names the field.
    #[error("{0} exceeds its limit")]
    Limit(&'static str),
}

impl DecodeError {
    /// A stable lowercase name for counting rejections by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty",
            DecodeError::Version(_) => "version",
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::Truncated => "truncated",
            DecodeError::Trailing(_) => "trailing",
            DecodeError::Malformed => "malformed",
            DecodeError::Limit(_) => "limit",
        }
    }
}

/// Why a bottle could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoding does not fit the buffer (or the configured bottle limit).
    #[error("bottle does not fit the buffer")]
    BufferFull,
    /// A field breaks a protocol limit, so no peer would accept the bottle; names it.
    #[error("{0} breaks a protocol limit")]
    Invalid(&'static str),
}

/// Maps postcard's result to ours, refusing trailing bytes.
pub(crate) fn finish_decode<T>(r: postcard::Result<(T, &[u8])>) -> Result<T, DecodeError> {
    match r {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(DecodeError::Trailing(rest.len())),
        Err(postcard::Error::DeserializeUnexpectedEnd) => Err(DecodeError::Truncated),
        Err(_) => Err(DecodeError::Malformed),
    }
}

impl<'a> Bottle<'a> {
    /// Decodes one bottle strictly.
    ///
    /// Checks, in order: the length against `limits.max_bottle`, the version byte, the
    /// postcard body (every declared length must lie within the input, lists within their
    /// bounds), no trailing bytes, then names and the declared state length. Decoding
    /// borrows from `bytes` and allocates only for the bounded list in a GOOD_MORNING ack.
    ///
    /// ```
    /// use pcxses_core::wire::{Bottle, Hello};
    /// use pcxses_core::{Limits, SessionId};
    ///
    /// let hello = Bottle::Hello(Hello { session: SessionId(7), seq: 1, state: None });
    /// let mut buf = [0u8; 64];
    /// let n = hello.encode(&mut buf)?;
    /// assert_eq!(Bottle::decode(&buf[..n], &Limits::DEFAULT)?, hello);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn decode(bytes: &'a [u8], limits: &Limits) -> Result<Bottle<'a>, DecodeError> {
        let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
        if bytes.len() > limits.max_bottle {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max: limits.max_bottle,
            });
        }
        if version != PROTOCOL_VERSION {
            return Err(DecodeError::Version(version));
        }
        let bottle: Bottle<'a> = finish_decode(postcard::take_from_bytes(body))?;
        if !bottle.check_names() {
            return Err(DecodeError::Limit("name"));
        }
        if let Some(chunk) = bottle.state_chunk() {
            if chunk.total_len > limits.max_state {
                return Err(DecodeError::Limit("state length"));
            }
            if chunk.data.len() as u64 > u64::from(chunk.total_len) {
                return Err(DecodeError::Limit("state chunk"));
            }
        }
        Ok(bottle)
    }

    /// Encodes the bottle (version byte first) into `buf`, returning the length written.
    /// `buf`'s length is the limit: pass `&mut buf[..mtu]` for datagrams.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        if !self.check_names() {
            return Err(EncodeError::Invalid("name"));
        }
        let (first, body) = buf.split_first_mut().ok_or(EncodeError::BufferFull)?;
        *first = PROTOCOL_VERSION;
        let used = postcard::to_slice(self, body)
            .map_err(|_| EncodeError::BufferFull)?
            .len();
        Ok(1 + used)
    }

    /// Appends the encoded bottle to `out`, refusing one longer than `max` bytes. `out`'s
    /// spare capacity is reused, so a long-lived buffer makes encoding allocation-free.
    pub fn encode_to_vec(&self, out: &mut Vec<u8>, max: usize) -> Result<usize, EncodeError> {
        if !self.check_names() {
            return Err(EncodeError::Invalid("name"));
        }
        let start = out.len();
        if max == 0 {
            return Err(EncodeError::BufferFull);
        }
        out.push(PROTOCOL_VERSION);
        let appender = Appender {
            out,
            limit: start + max,
        };
        match postcard::serialize_with_flavor::<Self, _, _>(self, appender) {
            Ok(()) => Ok(out.len() - start),
            Err(_) => {
                out.truncate(start);
                Err(EncodeError::BufferFull)
            }
        }
    }

    fn state_chunk(&self) -> Option<&StateChunk<'a>> {
        match self {
            Bottle::Hello(h) => h.state.as_ref(),
            Bottle::State(s) => Some(&s.chunk),
            _ => None,
        }
    }
}

/// A postcard flavor that appends to a vector, up to an absolute length.
struct Appender<'a> {
    out: &'a mut Vec<u8>,
    limit: usize,
}

impl postcard::ser_flavors::Flavor for Appender<'_> {
    type Output = ();

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        if self.out.len() >= self.limit {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.out.push(byte);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        if self.out.len() + bytes.len() > self.limit {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}
