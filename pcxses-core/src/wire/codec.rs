//! Encoding and strict decoding of bottles: one version byte, then postcard.

use alloc::vec::Vec;

use super::bottle::{Bottle, StateChunk};
use super::decode::{Decode, Reader};
use super::encode::{Encode, Writer};
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
    /// The bytes are not a valid encoding (bad tag, varint, UTF-8, option or list length),
    /// or a varint is not in its shortest form.
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

impl<'a> Bottle<'a> {
    /// Decodes one bottle strictly.
    ///
    /// Checks, in order: the length against `limits.max_bottle`, the version byte, the
    /// postcard body field by field (every varint in its shortest form and within its
    /// type, every declared length within the input, lists within their bounds), no
    /// trailing bytes, then names and the declared state length. Decoding borrows from
    /// `bytes` and allocates only for the bounded list in a GOOD_MORNING ack.
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
        let mut r = Reader::new(body);
        let bottle = <Bottle<'a> as Decode>::decode(&mut r);
        r.finish()?;
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
        let mut w = Writer::to_slice(buf);
        w.raw(&[PROTOCOL_VERSION]);
        Encode::encode(self, &mut w);
        w.finish().ok_or(EncodeError::BufferFull)
    }

    /// Appends the encoded bottle to `out`, refusing one longer than `max` bytes. `out`'s
    /// spare capacity is reused, so a long-lived buffer makes encoding allocation-free.
    pub fn encode_to_vec(&self, out: &mut Vec<u8>, max: usize) -> Result<usize, EncodeError> {
        if !self.check_names() {
            return Err(EncodeError::Invalid("name"));
        }
        let start = out.len();
        let mut w = Writer::to_vec(out, start.saturating_add(max));
        w.raw(&[PROTOCOL_VERSION]);
        Encode::encode(self, &mut w);
        match w.finish() {
            Some(end) => Ok(end - start),
            None => {
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

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;
    use crate::limits::MAX_BOTTLE_LEN;
    use crate::wire::bottle::{
        Challenge, ChunkAck, GoodBye, GoodByeAck, GoodMorning, GoodMorningAck, Hello, HelloAck,
        Morph, MorphAck, MorphFail, MorphFailReason, ObjectChunk, Progress, Reject, RejectReason,
        StateAck, StateBottle, StateMode,
    };
    use crate::wire::ids::{Digest, JoinNonce, SessionId, Signature};
    use crate::wire::manifest::{Manifest, ObjectEntry, StateEntry};
    use crate::wire::seq::BoundedSeq;

    const WIDE: Limits = Limits::datagram(MAX_BOTTLE_LEN);
    const S: [u8; 4] = [0xb9, 0x79, 0x37, 0x9e];
    const SESSION: SessionId = SessionId(0x9e37_79b9);
    const N: [u8; 8] = [0xa5, 0x5a, 1, 2, 3, 4, 5, 6];
    const NONCE: JoinNonce = JoinNonce(N);
    const DATA: [u8; 16] = *b"pacman:score=420";

    /// One piece of an encoding written by hand.
    #[derive(Clone, Copy)]
    enum T<'a> {
        /// Bytes as they are: the version byte, fixed arrays, bool and option tags, the
        /// contents of names and byte strings.
        Raw(&'a [u8]),
        /// A varint: an integer field, an enum index or a length.
        Var(u64),
    }
    use T::{Raw, Var};

    fn shortest(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let low = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(low);
                return;
            }
            out.push(low | 0x80);
        }
    }

    /// The bytes `tokens` spell, every varint in its shortest form except varint number
    /// `pad.0`, which takes `pad.1` more bytes than it needs (redundant zero groups).
    fn spell(tokens: &[T<'_>], pad: Option<(usize, usize)>) -> Vec<u8> {
        let mut out = Vec::new();
        let mut k = 0;
        for token in tokens {
            match *token {
                Raw(bytes) => out.extend_from_slice(bytes),
                Var(v) => {
                    shortest(v, &mut out);
                    if let Some((_, extra)) = pad.filter(|&(p, extra)| p == k && extra > 0) {
                        *out.last_mut().unwrap() |= 0x80;
                        out.extend(core::iter::repeat_n(0x80, extra - 1));
                        out.push(0x00);
                    }
                    k += 1;
                }
            }
        }
        out
    }

    /// The longer forms of every varint of `tokens`, one varint at a time: each from one
    /// redundant byte up to eleven bytes in all (within its type's width, which the
    /// lenient postcard decoder would accept, and beyond).
    fn longer_forms(tokens: &[T<'_>]) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let varints = tokens.iter().filter_map(|t| match t {
            Var(v) => Some(*v),
            Raw(_) => None,
        });
        for (k, v) in varints.enumerate() {
            let mut s = Vec::new();
            shortest(v, &mut s);
            for extra in 1..=11 - s.len() {
                out.push((v, spell(tokens, Some((k, extra)))));
            }
        }
        out
    }

    fn bottle_cases() -> Vec<(Vec<T<'static>>, Bottle<'static>)> {
        let mut run = BoundedSeq::new();
        run.push("pacman").unwrap();
        alloc::vec![
            (
                alloc::vec![
                    Raw(&[1]),
                    Var(0),
                    Var(3),
                    Raw(b"dev"),
                    Raw(&N),
                    Var(1),
                    Var(1000),
                    Var(3000),
                    Var(1200)
                ],
                Bottle::GoodMorning(GoodMorning {
                    device: "dev",
                    nonce: NONCE,
                    mode: StateMode::Separate,
                    hello_ms: 1000,
                    dead_ms: 3000,
                    max_bottle: 1200,
                }),
            ),
            (
                alloc::vec![
                    Raw(&[1]),
                    Var(1),
                    Raw(&S),
                    Raw(&N),
                    Var(1),
                    Var(1000),
                    Var(3000),
                    Var(2250),
                    Var(1024),
                    Var(1),
                    Var(6),
                    Raw(b"pacman")
                ],
                Bottle::GoodMorningAck(GoodMorningAck {
                    session: SESSION,
                    nonce: NONCE,
                    mode: StateMode::Separate,
                    hello_ms: 1000,
                    dead_ms: 3000,
                    fence_ms: 2250,
                    chunk_size: 1024,
                    run,
                }),
            ),
            (
                alloc::vec![
                    Raw(&[1]),
                    Var(2),
                    Raw(&S),
                    Var(1),
                    Raw(&[1]),
                    Var(2),
                    Var(70_000),
                    Var(16),
                    Var(0),
                    Var(16),
                    Raw(&DATA)
                ],
                Bottle::Hello(Hello {
                    session: SESSION,
                    seq: 1,
                    state: Some(StateChunk {
                        handle: 2,
                        version: 70_000,
                        total_len: 16,
                        index: 0,
                        data: &DATA,
                    }),
                }),
            ),
            (
                alloc::vec![Raw(&[1]), Var(3), Raw(&S), Var(300)],
                Bottle::HelloAck(HelloAck {
                    session: SESSION,
                    seq: 300
                }),
            ),
            (
                alloc::vec![
                    Raw(&[1]),
                    Var(4),
                    Raw(&S),
                    Var(1),
                    Var(5),
                    Var(20),
                    Var(1),
                    Var(4),
                    Raw(&DATA[..4])
                ],
                Bottle::State(StateBottle {
                    session: SESSION,
                    chunk: StateChunk {
                        handle: 1,
                        version: 5,
                        total_len: 20,
                        index: 1,
                        data: &DATA[..4],
                    },
                }),
            ),
            (
                alloc::vec![
                    Raw(&[1]),
                    Var(5),
                    Raw(&S),
                    Var(1),
                    Var(70_000),
                    Var(3),
                    Var(5)
                ],
                Bottle::StateAck(StateAck {
                    session: SESSION,
                    handle: 1,
                    version: 70_000,
                    progress: Progress { next: 3, sack: 5 },
                }),
            ),
            (
                alloc::vec![
                    Raw(&[1]),
                    Var(6),
                    Raw(&S),
                    Var(3),
                    Var(1),
                    Var(3),
                    Raw(b"abc"),
                    Raw(&[1]),
                    Raw(&[0x33; 64])
                ],
                Bottle::Morph(Morph {
                    session: SESSION,
                    morph: 3,
                    handle: 1,
                    manifest: b"abc",
                    signature: Some(Signature([0x33; 64])),
                }),
            ),
            (
                alloc::vec![
                    Raw(&[1]),
                    Var(7),
                    Raw(&S),
                    Var(3),
                    Var(39),
                    Var(4),
                    Raw(&DATA[..4])
                ],
                Bottle::ObjectChunk(ObjectChunk {
                    session: SESSION,
                    morph: 3,
                    index: 39,
                    data: &DATA[..4],
                }),
            ),
            (
                alloc::vec![Raw(&[1]), Var(8), Raw(&S), Var(3), Var(40), Var(5)],
                Bottle::ChunkAck(ChunkAck {
                    session: SESSION,
                    morph: 3,
                    progress: Progress { next: 40, sack: 5 },
                }),
            ),
            (
                alloc::vec![Raw(&[1]), Var(9), Raw(&S), Var(200)],
                Bottle::MorphAck(MorphAck {
                    session: SESSION,
                    morph: 200
                }),
            ),
            (
                alloc::vec![Raw(&[1]), Var(10), Raw(&S), Var(3), Var(3)],
                Bottle::MorphFail(MorphFail {
                    session: SESSION,
                    morph: 3,
                    reason: MorphFailReason::DigestMismatch,
                }),
            ),
            (
                alloc::vec![Raw(&[1]), Var(11), Raw(&S)],
                Bottle::GoodBye(GoodBye { session: SESSION }),
            ),
            (
                alloc::vec![Raw(&[1]), Var(12), Raw(&S)],
                Bottle::GoodByeAck(GoodByeAck { session: SESSION }),
            ),
            (
                alloc::vec![Raw(&[1]), Var(13), Raw(&[0; 4]), Raw(&N), Var(3)],
                Bottle::Reject(Reject {
                    session: SessionId::NONE,
                    nonce: NONCE,
                    reason: RejectReason::BadVersion,
                }),
            ),
            (
                alloc::vec![Raw(&[1]), Var(14), Raw(&N), Raw(&[0x44; 16])],
                Bottle::Challenge(Challenge {
                    nonce: NONCE,
                    challenge: [0x44; 16],
                }),
            ),
        ]
    }

    #[test]
    fn every_bottle_decodes_from_its_shortest_varints_only() {
        let cases = bottle_cases();
        assert_eq!(cases.len(), 15, "one case per bottle type");
        for (tokens, want) in &cases {
            let bytes = spell(tokens, None);
            assert_eq!(Bottle::decode(&bytes, &WIDE).as_ref(), Ok(want));
            let mut encoded = alloc::vec![0u8; bytes.len()];
            assert_eq!(want.encode(&mut encoded), Ok(bytes.len()));
            assert_eq!(encoded, bytes, "{want:?}");
            for (value, longer) in longer_forms(tokens) {
                assert_eq!(
                    Bottle::decode(&longer, &WIDE),
                    Err(DecodeError::Malformed),
                    "{want:?}: varint {value} as {longer:02x?}"
                );
            }
        }
    }

    #[test]
    fn a_manifest_decodes_from_its_shortest_varints_only() {
        let mut objects = BoundedSeq::new();
        objects
            .push(ObjectEntry {
                id: "code",
                size: 40_000,
                sha256: Digest([0x11; 32]),
                invoke: true,
            })
            .unwrap();
        let want = Manifest {
            computation: "pacman",
            sequence: 300,
            target: "runner",
            nonce: NONCE,
            replaces: "home",
            objects,
            state: StateEntry {
                version: 70_000,
                size: 16,
                sha256: Digest([0x22; 32]),
            },
        };
        let tokens = [
            Var(6),
            Raw(b"pacman"),
            Var(300),
            Var(6),
            Raw(b"runner"),
            Raw(&N),
            Var(4),
            Raw(b"home"),
            Var(1),
            Var(4),
            Raw(b"code"),
            Var(40_000),
            Raw(&[0x11; 32]),
            Raw(&[1]),
            Var(70_000),
            Var(16),
            Raw(&[0x22; 32]),
        ];
        let bytes = spell(&tokens, None);
        assert_eq!(Manifest::decode(&bytes, &Limits::DEFAULT), Ok(want.clone()));
        let mut encoded = [0u8; 256];
        assert_eq!(want.encode(&mut encoded), Ok(bytes.len()));
        assert_eq!(&encoded[..bytes.len()], &bytes[..]);
        for (value, longer) in longer_forms(&tokens) {
            assert_eq!(
                Manifest::decode(&longer, &Limits::DEFAULT),
                Err(DecodeError::Malformed),
                "varint {value} as {longer:02x?}"
            );
        }
    }

    #[test]
    fn a_redundant_zero_group_is_refused_even_for_zero() {
        // GOOD_BYE with its type as `8b 00`, and HELLO with seq 0 as `80 00`.
        let mut bye = alloc::vec![1, 0x8b, 0x00];
        bye.extend_from_slice(&S);
        assert_eq!(Bottle::decode(&bye, &WIDE), Err(DecodeError::Malformed));
        let mut hello = alloc::vec![1, 2];
        hello.extend_from_slice(&S);
        hello.extend_from_slice(&[0x80, 0x00, 0x00]);
        assert_eq!(Bottle::decode(&hello, &WIDE), Err(DecodeError::Malformed));
        hello.splice(6..8, [0x00]);
        assert!(Bottle::decode(&hello, &WIDE).is_ok());
    }
}
