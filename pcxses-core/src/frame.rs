//! Framing for stream transports: each bottle behind its length as a LEB128 varint.
//!
//! Datagram transports need no framing: one bottle per datagram, encoded with
//! [`Bottle::encode`] into a buffer of the MTU's length and decoded with
//! [`Bottle::decode`] under [`Limits::datagram`](crate::Limits::datagram).

use alloc::vec::Vec;

use crate::wire::bottle::Bottle;
use crate::wire::codec::EncodeError;

/// Longest length prefix: a `u32` as LEB128.
pub const MAX_PREFIX_LEN: usize = 5;

/// Why a byte stream is not a valid sequence of frames. Every error is final: a stream
/// transport closes the connection, since the frame boundaries are lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame declared a length above the decoder's limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Declared length.
        len: u64,
        /// Limit in force.
        max: usize,
    },
    /// A frame declared length zero.
    #[error("empty frame")]
    Empty,
    /// The length prefix is not a minimal LEB128 encoding of a `u32`.
    #[error("bad length prefix")]
    BadPrefix,
}

/// Appends one frame (length prefix, then the encoded bottle) to `out`, refusing a bottle
/// longer than `max` bytes.
pub fn write_frame(bottle: &Bottle<'_>, out: &mut Vec<u8>, max: usize) -> Result<(), EncodeError> {
    // Reserve the longest prefix, encode after it, then move the body up to the real prefix.
    let start = out.len();
    out.resize(start + MAX_PREFIX_LEN, 0);
    let len = bottle
        .encode_to_vec(out, max)
        .inspect_err(|_| out.truncate(start))?;
    let mut prefix = [0u8; MAX_PREFIX_LEN];
    let plen = write_varint(len as u32, &mut prefix);
    out.copy_within(start + MAX_PREFIX_LEN.., start + plen);
    out[start..start + plen].copy_from_slice(&prefix[..plen]);
    out.truncate(start + plen + len);
    Ok(())
}

/// Appends one frame holding `bottle`, bytes already encoded (by a machine's
/// `poll_output`), to `out`.
pub fn push_frame(bottle: &[u8], out: &mut Vec<u8>) {
    let mut prefix = [0u8; MAX_PREFIX_LEN];
    let n = write_varint(bottle.len() as u32, &mut prefix);
    out.extend_from_slice(&prefix[..n]);
    out.extend_from_slice(bottle);
}

fn write_varint(mut v: u32, out: &mut [u8; MAX_PREFIX_LEN]) -> usize {
    let mut i = 0;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out[i] = byte;
            return i + 1;
        }
        out[i] = byte | 0x80;
        i += 1;
    }
}

/// Incremental decoder of a framed byte stream.
///
/// Feed it whatever each read returned; it yields complete frames. A frame that arrives
/// whole in one read is returned straight from the input without copying; only a frame
/// split across reads is buffered, and the buffer never holds more than one frame, whose
/// declared length is checked against the limit before any byte of it is kept. Memory is
/// therefore bounded by [`FrameDecoder::max_frame`] plus a few bytes.
///
/// ```
/// use pcxses_core::wire::{Bottle, GoodBye};
/// use pcxses_core::{frame::{write_frame, FrameDecoder}, SessionId};
///
/// let mut wire = Vec::new();
/// write_frame(&Bottle::GoodBye(GoodBye { session: SessionId(1) }), &mut wire, 64)?;
/// write_frame(&Bottle::GoodBye(GoodBye { session: SessionId(2) }), &mut wire, 64)?;
///
/// let mut decoder = FrameDecoder::new(1200);
/// let mut frames = 0;
/// for read in wire.chunks(3) {
///     let mut input = read;
///     while let Some(frame) = decoder.decode(&mut input)? {
///         assert!(frame.len() > 1);
///         frames += 1;
///     }
/// }
/// assert_eq!(frames, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame: usize,
    /// Bytes of the length prefix read so far.
    prefix: u64,
    prefix_len: u8,
    /// Declared length of the frame being read, once the prefix is complete.
    body_len: Option<usize>,
    /// Part of a frame that arrived across reads.
    partial: Vec<u8>,
    /// `partial` holds a complete frame handed out by the last call.
    handed_out: bool,
    error: Option<FrameError>,
}

impl FrameDecoder {
    /// A decoder accepting frames of at most `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder {
            max_frame,
            prefix: 0,
            prefix_len: 0,
            body_len: None,
            partial: Vec::new(),
            handed_out: false,
            error: None,
        }
    }

    /// The largest frame accepted.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Bytes of memory held for a partial frame: at most [`FrameDecoder::max_frame`].
    pub fn buffered(&self) -> usize {
        self.partial.capacity()
    }

    /// Consumes bytes from the front of `input` and returns the next complete frame, or
    /// `None` once `input` is used up without completing one. Call it again while it
    /// returns frames. After an error every call returns the same error.
    pub fn decode<'r, 'i: 'r>(
        &'r mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<&'r [u8]>, FrameError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.handed_out {
            self.partial.clear();
            self.handed_out = false;
        }
        let len = match self.body_len {
            Some(len) => len,
            None => match self.read_prefix(input) {
                Ok(Some(len)) => len,
                Ok(None) => return Ok(None),
                Err(e) => {
                    self.error = Some(e);
                    self.partial = Vec::new();
                    return Err(e);
                }
            },
        };
        if self.partial.is_empty() && input.len() >= len {
            let (frame, rest) = input.split_at(len);
            *input = rest;
            self.body_len = None;
            return Ok(Some(frame));
        }
        let take = (len - self.partial.len()).min(input.len());
        if self.partial.is_empty() && take > 0 {
            self.partial.reserve_exact(len);
        }
        self.partial.extend_from_slice(&input[..take]);
        *input = &input[take..];
        if self.partial.len() < len {
            return Ok(None);
        }
        self.body_len = None;
        self.handed_out = true;
        Ok(Some(&self.partial))
    }

    fn read_prefix(&mut self, input: &mut &[u8]) -> Result<Option<usize>, FrameError> {
        while let Some((&byte, rest)) = input.split_first() {
            *input = rest;
            let shift = 7 * u32::from(self.prefix_len);
            self.prefix |= u64::from(byte & 0x7f) << shift;
            self.prefix_len += 1;
            if byte & 0x80 != 0 {
                if usize::from(self.prefix_len) == MAX_PREFIX_LEN {
                    return Err(FrameError::BadPrefix);
                }
                continue;
            }
            // Minimal encoding: a last byte of zero is only valid as the whole prefix.
            if byte == 0 && self.prefix_len > 1 {
                return Err(FrameError::BadPrefix);
            }
            let len = self.prefix;
            self.prefix = 0;
            self.prefix_len = 0;
            if len > u64::from(u32::MAX) {
                return Err(FrameError::BadPrefix);
            }
            if len == 0 {
                return Err(FrameError::Empty);
            }
            if len > self.max_frame as u64 {
                return Err(FrameError::TooLarge {
                    len,
                    max: self.max_frame,
                });
            }
            self.body_len = Some(len as usize);
            return Ok(Some(len as usize));
        }
        Ok(None)
    }
}
