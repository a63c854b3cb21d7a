//! What an attacker on the network learns from the bottles it sees, and the bottles it
//! makes up from that.

use std::collections::VecDeque;

use hmac::{Hmac, Mac};
use pcxses_core::psk::{self, Direction, Psk};
use pcxses_core::wire::{
    Bottle, BoundedSeq, Challenge, ChunkAck, Digest, GoodBye, GoodByeAck, GoodMorning,
    GoodMorningAck, Hello, HelloAck, JoinNonce, Manifest, Morph, MorphAck, MorphFail,
    MorphFailReason, ObjectChunk, ObjectEntry, Progress, Reject, RejectReason, Signature, StateAck,
    StateBottle, StateChunk, StateEntry, StateMode,
};
use pcxses_core::{Limits, SessionId, MAX_HOSTED, MAX_OBJECTS};
use sha2::{Digest as _, Sha256};

use crate::script::{
    ChunkData, ChunkPick, Forged, ManifestPick, MorphPick, NamePick, NoncePick, SealPick,
    SessionPick,
};

/// Values remembered of each kind.
const REMEMBERED: usize = 16;
/// Bytes a forged payload may take, so that every bottle stays small.
const MAX_PAYLOAD: usize = 2_048;

/// The most recent distinct values seen, newest last.
#[derive(Debug)]
struct Recent<T>(VecDeque<T>);

impl<T: PartialEq + Copy> Recent<T> {
    fn new() -> Self {
        Recent(VecDeque::new())
    }

    fn note(&mut self, v: T) {
        if self.0.contains(&v) {
            return;
        }
        if self.0.len() == REMEMBERED {
            self.0.pop_front();
        }
        self.0.push_back(v);
    }

    /// The `n`-th most recent, counting round.
    fn pick(&self, n: u8) -> Option<T> {
        let len = self.0.len();
        (len > 0).then(|| self.0[len - 1 - usize::from(n) % len])
    }
}

/// A session key an attacker could hold: derived from a device's key and a challenge seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionKey {
    /// The key.
    pub key: [u8; 32],
    /// The challenge it answers, which a sealed GOOD_MORNING carries.
    pub challenge: [u8; psk::CHALLENGE_LEN],
}

/// What the attacker knows: names from the configuration, and what it saw on the network.
#[derive(Debug)]
pub struct Attacker {
    devices: Vec<String>,
    computations: Vec<String>,
    sessions: Recent<SessionId>,
    nonces: Recent<JoinNonce>,
    morphs: Recent<u32>,
    keys: Recent<SessionKey>,
    chunk_size: u16,
    /// The MORPH stream the last built manifest describes.
    stream: Vec<u8>,
}

/// The session key of a pre-shared-key join (`docs/PROTOCOL.md` §12).
fn session_key(psk: &Psk, challenge: &[u8; psk::CHALLENGE_LEN], nonce: JoinNonce) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&psk.0).expect("HMAC takes any key");
    m.update(b"pcxses session v1");
    m.update(challenge);
    m.update(&nonce.0);
    m.finalize().into_bytes().into()
}

/// The bottle inside `bytes`: plain, sealed, or a sealed GOOD_MORNING with its challenge.
fn open(bytes: &[u8]) -> Option<(Bottle<'_>, Option<[u8; psk::CHALLENGE_LEN]>)> {
    let limits = Limits {
        max_bottle: usize::MAX,
        ..Limits::DEFAULT
    };
    if let Ok(b) = Bottle::decode(bytes, &limits) {
        return Some((b, None));
    }
    let body = bytes.len().checked_sub(psk::TRAILER_LEN)?;
    if let Ok(b) = Bottle::decode(&bytes[..body], &limits) {
        return Some((b, None));
    }
    let bottle = body.checked_sub(psk::CHALLENGE_LEN)?;
    let b = Bottle::decode(&bytes[..bottle], &limits).ok()?;
    let challenge = bytes[bottle..body].try_into().ok()?;
    Some((b, Some(challenge)))
}

/// Refusals an accepted bottle may count besides itself: the AC judges a state chunk riding
/// on a HELLO on its own, and counts it if refused, while the HELLO still proves liveness.
pub fn riders(bytes: &[u8]) -> u64 {
    match open(bytes) {
        Some((Bottle::Hello(h), _)) => u64::from(h.state.is_some()),
        _ => 0,
    }
}

impl Attacker {
    /// An attacker that knows the configured names.
    pub fn new(devices: Vec<String>, computations: Vec<String>) -> Attacker {
        Attacker {
            devices,
            computations,
            sessions: Recent::new(),
            nonces: Recent::new(),
            morphs: Recent::new(),
            keys: Recent::new(),
            chunk_size: 256,
            stream: Vec::new(),
        }
    }

    /// Learns from one bottle seen on the network. `psk` is the key of the device it
    /// travels to or from, if it has one: with it, a CHALLENGE gives away a session key.
    pub fn observe(&mut self, bytes: &[u8], psk: Option<&Psk>) {
        let Some((bottle, challenge)) = open(bytes) else {
            return;
        };
        if let Some(s) = bottle.session().filter(|s| *s != SessionId::NONE) {
            self.sessions.note(s);
        }
        match bottle {
            Bottle::GoodMorning(g) => {
                self.nonces.note(g.nonce);
                if let (Some(psk), Some(c)) = (psk, challenge) {
                    self.learn_key(psk, c, g.nonce);
                }
            }
            Bottle::GoodMorningAck(a) => {
                self.nonces.note(a.nonce);
                self.chunk_size = a.chunk_size.max(1);
            }
            Bottle::Challenge(c) => {
                self.nonces.note(c.nonce);
                if let Some(psk) = psk {
                    self.learn_key(psk, c.challenge, c.nonce);
                }
            }
            Bottle::Morph(m) => self.morphs.note(m.morph),
            Bottle::ObjectChunk(c) => self.morphs.note(c.morph),
            Bottle::ChunkAck(a) => self.morphs.note(a.morph),
            Bottle::MorphAck(a) => self.morphs.note(a.morph),
            Bottle::MorphFail(f) => self.morphs.note(f.morph),
            _ => {}
        }
    }

    fn learn_key(&mut self, psk: &Psk, challenge: [u8; psk::CHALLENGE_LEN], nonce: JoinNonce) {
        self.keys.note(SessionKey {
            key: session_key(psk, &challenge, nonce),
            challenge,
        });
    }

    fn session(&self, p: SessionPick) -> SessionId {
        match p {
            SessionPick::Seen(n) => self.sessions.pick(n).unwrap_or(SessionId(1)),
            SessionPick::Raw(v) => SessionId(v),
        }
    }

    fn nonce(&self, p: NoncePick) -> JoinNonce {
        match p {
            NoncePick::Seen(n) => self.nonces.pick(n).unwrap_or_default(),
            NoncePick::Raw(v) => JoinNonce(v),
        }
    }

    fn morph(&self, p: MorphPick) -> u32 {
        match p {
            MorphPick::Seen(n) => self.morphs.pick(n).unwrap_or(1),
            MorphPick::Raw(v) => v,
        }
    }

    fn name(&self, p: &NamePick) -> String {
        let nth = |names: &[String], n: u8| names[usize::from(n) % names.len()].clone();
        match p {
            NamePick::Device(n) => nth(&self.devices, *n),
            NamePick::Computation(n) => nth(&self.computations, *n),
            NamePick::Raw(s) => s.chars().take(48).collect(),
        }
    }

    /// The bytes of `bottle`, sealed as `seal` says for a bottle travelling `dir`.
    pub fn forge(&mut self, bottle: &Forged, seal: SealPick, dir: Direction) -> Vec<u8> {
        let mut out = self.encode(bottle);
        let is_join = matches!(bottle, Forged::GoodMorning { .. });
        match seal {
            SealPick::Plain => {}
            SealPick::WrongKey { key, counter } => {
                if is_join {
                    out.extend_from_slice(&key[..psk::CHALLENGE_LEN]);
                }
                psk::seal(&mut out, 0, &key, dir, counter);
            }
            SealPick::RightKey { which, counter } => {
                if let Some(k) = self.keys.pick(which) {
                    if is_join {
                        out.extend_from_slice(&k.challenge);
                    }
                    psk::seal(&mut out, 0, &k.key, dir, counter);
                }
            }
        }
        out
    }

    /// Whether `seal` is one a holder of a device's key could make.
    pub fn holds_key(&self, seal: SealPick) -> bool {
        matches!(seal, SealPick::RightKey { which, .. } if self.keys.pick(which).is_some())
    }

    /// The encoded bottle, names unchecked: the encoder would refuse bad ones, an attacker
    /// does not.
    fn encode(&mut self, f: &Forged) -> Vec<u8> {
        let mode = |split: bool| if split { StateMode::Separate } else { StateMode::InHello };
        let names: Vec<String>;
        let name: String;
        let manifest: Vec<u8>;
        let data: Vec<u8>;
        let bottle = match f {
            Forged::GoodMorning {
                device,
                nonce,
                split,
                hello_ms,
                dead_ms,
                max_bottle,
            } => {
                name = self.name(device);
                Bottle::GoodMorning(GoodMorning {
                    device: &name,
                    nonce: self.nonce(*nonce),
                    mode: mode(*split),
                    hello_ms: *hello_ms,
                    dead_ms: *dead_ms,
                    max_bottle: *max_bottle,
                })
            }
            Forged::GoodMorningAck {
                session,
                nonce,
                split,
                hello_ms,
                dead_ms,
                fence_ms,
                chunk_size,
                run,
            } => {
                names = run.iter().take(MAX_HOSTED).map(|n| self.name(n)).collect();
                let run = names.iter().map(String::as_str).collect();
                Bottle::GoodMorningAck(GoodMorningAck {
                    session: self.session(*session),
                    nonce: self.nonce(*nonce),
                    mode: mode(*split),
                    hello_ms: *hello_ms,
                    dead_ms: *dead_ms,
                    fence_ms: *fence_ms,
                    chunk_size: *chunk_size,
                    run: BoundedSeq::from_vec(run).unwrap_or_else(|_| BoundedSeq::new()),
                })
            }
            Forged::Hello {
                session,
                seq,
                state,
            } => Bottle::Hello(Hello {
                session: self.session(*session),
                seq: *seq,
                state: state.as_ref().map(chunk),
            }),
            Forged::HelloAck { session, seq } => Bottle::HelloAck(HelloAck {
                session: self.session(*session),
                seq: *seq,
            }),
            Forged::State { session, chunk: c } => Bottle::State(StateBottle {
                session: self.session(*session),
                chunk: chunk(c),
            }),
            Forged::StateAck {
                session,
                handle,
                version,
                next,
                sack,
            } => Bottle::StateAck(StateAck {
                session: self.session(*session),
                handle: *handle,
                version: *version,
                progress: Progress {
                    next: *next,
                    sack: *sack,
                },
            }),
            Forged::Morph {
                session,
                morph,
                handle,
                manifest: m,
                signature,
            } => {
                manifest = self.manifest(m);
                Bottle::Morph(Morph {
                    session: self.session(*session),
                    morph: self.morph(*morph),
                    handle: *handle,
                    manifest: &manifest,
                    signature: signature.map(Signature),
                })
            }
            Forged::ObjectChunk {
                session,
                morph,
                index,
                data: d,
            } => {
                let (index, bytes) = match d {
                    ChunkData::Raw(b) => (*index, b[..b.len().min(MAX_PAYLOAD)].to_vec()),
                    ChunkData::Stream(i) => {
                        let size = usize::from(self.chunk_size);
                        let at = (usize::from(*i) * size).min(self.stream.len());
                        let end = (at + size).min(self.stream.len());
                        (u32::from(*i), self.stream[at..end].to_vec())
                    }
                };
                data = bytes;
                Bottle::ObjectChunk(ObjectChunk {
                    session: self.session(*session),
                    morph: self.morph(*morph),
                    index,
                    data: &data,
                })
            }
            Forged::ChunkAck {
                session,
                morph,
                next,
                sack,
            } => Bottle::ChunkAck(ChunkAck {
                session: self.session(*session),
                morph: self.morph(*morph),
                progress: Progress {
                    next: *next,
                    sack: *sack,
                },
            }),
            Forged::MorphAck { session, morph } => Bottle::MorphAck(MorphAck {
                session: self.session(*session),
                morph: self.morph(*morph),
            }),
            Forged::MorphFail {
                session,
                morph,
                reason,
            } => Bottle::MorphFail(MorphFail {
                session: self.session(*session),
                morph: self.morph(*morph),
                reason: morph_fail_reason(*reason),
            }),
            Forged::GoodBye { session } => Bottle::GoodBye(GoodBye {
                session: self.session(*session),
            }),
            Forged::GoodByeAck { session } => Bottle::GoodByeAck(GoodByeAck {
                session: self.session(*session),
            }),
            Forged::Reject {
                session,
                nonce,
                reason,
            } => Bottle::Reject(Reject {
                session: self.session(*session),
                nonce: self.nonce(*nonce),
                reason: reject_reason(*reason),
            }),
            Forged::Challenge { nonce, challenge } => Bottle::Challenge(Challenge {
                nonce: self.nonce(*nonce),
                challenge: *challenge,
            }),
        };
        let mut out = vec![pcxses_core::PROTOCOL_VERSION];
        out.extend(postcard::to_allocvec(&bottle).expect("a bottle always serializes"));
        out
    }

    /// The bytes of a forged manifest; a built one also becomes the stream that
    /// [`ChunkData::Stream`] sends.
    fn manifest(&mut self, m: &ManifestPick) -> Vec<u8> {
        let (computation, sequence, target, nonce, replaces, objects, lkgs_version, lkgs) = match m
        {
            ManifestPick::Raw(bytes) => return bytes[..bytes.len().min(MAX_PAYLOAD)].to_vec(),
            ManifestPick::Built {
                computation,
                sequence,
                target,
                nonce,
                replaces,
                objects,
                lkgs_version,
                lkgs,
            } => (
                computation,
                sequence,
                target,
                nonce,
                replaces,
                objects,
                lkgs_version,
                lkgs,
            ),
        };
        let objects = &objects[..objects.len().min(MAX_OBJECTS)];
        let ids: Vec<String> = objects.iter().map(|(id, _, _)| self.name(id)).collect();
        let (computation, target, replaces) = (
            self.name(computation),
            self.name(target),
            self.name(replaces),
        );
        let digest = |b: &[u8]| Digest(Sha256::digest(b).into());
        let entries = objects
            .iter()
            .zip(&ids)
            .map(|((_, bytes, invoke), id)| ObjectEntry {
                id,
                size: bytes.len() as u32,
                sha256: digest(bytes),
                invoke: *invoke,
            })
            .collect();
        let manifest = Manifest {
            computation: &computation,
            sequence: *sequence,
            target: &target,
            nonce: self.nonce(*nonce),
            replaces: &replaces,
            objects: BoundedSeq::from_vec(entries).unwrap_or_else(|_| BoundedSeq::new()),
            state: StateEntry {
                version: *lkgs_version,
                size: lkgs.len() as u32,
                sha256: digest(lkgs),
            },
        };
        let encoded = postcard::to_allocvec(&manifest).expect("a manifest always serializes");
        self.stream = objects
            .iter()
            .flat_map(|(_, bytes, _)| bytes.iter().copied())
            .chain(lkgs.iter().copied())
            .collect();
        encoded
    }
}

fn chunk(c: &ChunkPick) -> StateChunk<'_> {
    StateChunk {
        handle: c.handle,
        version: c.version,
        total_len: c.total_len,
        index: c.index,
        data: &c.data[..c.data.len().min(MAX_PAYLOAD)],
    }
}

fn reject_reason(n: u8) -> RejectReason {
    use RejectReason as R;
    let all = [
        R::UnknownDevice,
        R::UnknownSession,
        R::Replaced,
        R::BadVersion,
        R::Unauthorized,
        R::Malformed,
    ];
    all[usize::from(n) % all.len()]
}

fn morph_fail_reason(n: u8) -> MorphFailReason {
    use MorphFailReason as R;
    let all = [
        R::BadSignature,
        R::StaleSequence,
        R::WrongTarget,
        R::DigestMismatch,
        R::Malformed,
        R::Busy,
        R::Refused,
        R::TimedOut,
    ];
    all[usize::from(n) % all.len()]
}
