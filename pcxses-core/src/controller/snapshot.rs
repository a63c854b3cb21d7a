//! Persisting the AC: its registry, sessions and every LKGS, as bytes. In pre-shared-key
//! mode a snapshot holds the sessions' keys too: keep it as secret as the keys themselves.

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use super::computation::Place;
use super::config::ConfigError;
use super::session::SessionStatus;
use super::session_ids::MAX_DEVICES;
use super::Controller;
use crate::wire::bottle::StateMode;
use crate::wire::ids::JoinNonce;

mod inspect;
mod restore;
pub use inspect::{
    ChangeView, ComputationView, DeviceView, PlacementView, SessionView, SnapshotView,
};

/// Version byte of the snapshot and change encodings.
const SNAPSHOT_VERSION: u8 = 4;

/// How far a restored session's send counter jumps: beyond any counter the AC can have
/// used between the last record of the device and its restart, so the device never sees
/// one twice. A journal records the device at least every [`super::auth::RECORD_EVERY`]
/// of its bottles, and the AC sends far fewer than this many bottles for each it receives.
const COUNTER_GAP: u32 = 1 << 24;

/// Why a snapshot could not be restored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The bytes are not a snapshot of a version this crate reads.
    #[error("not a readable snapshot")]
    Format,
    /// The snapshot names a device the configuration does not have.
    #[error("snapshot names unknown device {0:?}")]
    UnknownDevice(String),
    /// The snapshot names a computation the configuration does not have.
    #[error("snapshot names unknown computation {0:?}")]
    UnknownComputation(String),
    /// The controller has handled something, been restored or has a journal already:
    /// only one just made is restored.
    #[error("only a controller just made, without a journal, is restored")]
    NotNew,
    /// The configuration itself is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

// The parts borrow their names and states: from the controller when they are written, from
// the bytes when they are read.
#[derive(Serialize, Deserialize)]
struct Parts<D, C> {
    next_morph: u32,
    session_keys: [u32; 4],
    devices: D,
    comps: C,
}

/// A snapshot as read: its devices and computations listed.
type Snap<'a> = Parts<Listed<SnapDevice<'a>>, Listed<SnapComp<'a>>>;

/// A list read into room for as many parts as it says it has, up to [`MAX_DEVICES`]: a list
/// that grew part by part would copy a million devices some twenty times over, and hold
/// the old copy beside the new one at each step.
struct Listed<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Listed<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Parts<T>(core::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Parts<T> {
            type Value = Listed<T>;

            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("a list")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Listed<T>, A::Error> {
                let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_DEVICES));
                while let Some(part) = seq.next_element()? {
                    list.push(part);
                }
                Ok(Listed(list))
            }
        }
        deserializer.deserialize_seq(Parts(core::marker::PhantomData))
    }
}

/// Parts `0..len`, each made by the function as it is written: a snapshot of a million
/// devices is encoded without a list of them beside the encoding.
struct Each<F>(u32, F);

impl<T: Serialize, F: Fn(u32) -> T> Serialize for Each<F> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq((0..self.0).map(&self.1))
    }
}

#[derive(Serialize, Deserialize)]
struct SnapDevice<'a> {
    name: &'a str,
    #[serde(borrow)]
    session: Option<SnapSession<'a>>,
    generation: u32,
    retired: u32,
    retired_dismissed: bool,
    retired_link: u64,
    auth: Option<SnapAuth>,
}

#[derive(Serialize, Deserialize)]
struct SnapSession<'a> {
    id: u32,
    link: u64,
    nonce: JoinNonce,
    mode: StateMode,
    hello_ms: u32,
    dead_ms: u32,
    fence_ms: u32,
    chunk: u16,
    max_bottle: u16,
    #[serde(borrow)]
    hosted: Vec<(u16, &'a str)>,
    run_len: u16,
    next_handle: u16,
}

/// The keys of a device's latest session (live or just ended) in pre-shared-key mode.
#[derive(Serialize, Deserialize)]
struct SnapAuth {
    session: u32,
    key: [u8; 32],
    sent: u32,
    window: (u32, u64),
}

#[derive(Serialize, Deserialize)]
struct SnapComp<'a> {
    name: &'a str,
    lkgs: &'a [u8],
    lkgs_version: u32,
    lkgs_from: u32,
    sequence: u64,
    failures: u32,
    #[serde(borrow)]
    place: SnapPlace<'a>,
}

#[derive(Serialize, Deserialize)]
enum SnapPlace<'a> {
    Unplaced,
    Running {
        device: &'a str,
        handle: u16,
        morph: u32,
        unproven: bool,
    },
    Recovering {
        from: &'a str,
        from_session: u32,
        tried: Vec<u32>,
        #[serde(borrow)]
        in_flight: Option<SnapAttempt<'a>>,
    },
    Quarantined,
    Stopped,
}

/// A MORPH that was in flight: after a restore it is cancelled before the computation
/// moves on, since the target may have started it.
#[derive(Serialize, Deserialize)]
struct SnapAttempt<'a> {
    morph: u32,
    target: &'a str,
    session: u32,
    handle: u16,
}

/// One changed part of the AC, as a journal records it between snapshots.
#[derive(Serialize, Deserialize)]
enum Change<'a> {
    #[serde(borrow)]
    Device(SnapDevice<'a>),
    #[serde(borrow)]
    Comp(SnapComp<'a>),
    /// The next MORPH id.
    Morphs(u32),
}

impl Controller {
    /// Everything needed to restart the AC without losing what it acknowledged: the
    /// registry's sessions, every LKGS, placements, manifest sequence numbers and MORPHs
    /// in flight. Restore with [`Controller::restore`].
    pub fn snapshot(&self) -> Vec<u8> {
        let snap = Parts {
            next_morph: self.next_morph,
            session_keys: self.session_ids.keys(),
            devices: Each(self.devices.len() as u32, |d| self.snap_device(d)),
            comps: Each(self.comps.len() as u32, |c| self.snap_comp(c)),
        };
        let mut out = Vec::new();
        encode(&snap, &mut out);
        out
    }

    /// Writes into `out` (emptied first) the record of what changed of device `d`,
    /// computation `c` or the MORPH counter.
    pub(super) fn change(&self, part: Part, out: &mut Vec<u8>) {
        let change = match part {
            Part::Device(d) => Change::Device(self.snap_device(d)),
            Part::Comp(c) => Change::Comp(self.snap_comp(c)),
            Part::Morphs => Change::Morphs(self.next_morph),
        };
        encode(&change, out);
    }

    fn snap_device(&self, d: u32) -> SnapDevice<'_> {
        let dev = &self.devices[d as usize];
        SnapDevice {
            name: self.registry.devices.get(d),
            generation: dev.generation,
            retired: dev.retired.0,
            retired_dismissed: dev.retired_status == SessionStatus::Dismissed,
            retired_link: dev.retired_link.0,
            session: dev.session.as_ref().map(|s| SnapSession {
                id: s.id.0,
                link: s.link.0,
                nonce: s.nonce,
                mode: s.mode,
                hello_ms: s.hello_ms,
                dead_ms: s.dead_ms,
                fence_ms: s.fence_ms,
                chunk: s.chunk,
                max_bottle: s.max_bottle,
                hosted: s
                    .hosted
                    .iter()
                    .map(|&(h, c)| (h, self.registry.comps.get(c)))
                    .collect(),
                run_len: s.run_len,
                next_handle: s.next_handle,
            }),
            auth: self
                .psk
                .get(d as usize)
                .and_then(Option::as_ref)
                .and_then(|p| p.auth.as_ref())
                .map(|a| SnapAuth {
                    session: a.session.0,
                    key: a.keys.key,
                    sent: a.keys.sent,
                    window: a.keys.window.parts(),
                }),
        }
    }

    fn snap_comp(&self, c: u32) -> SnapComp<'_> {
        let comp = &self.comps[c as usize];
        let name = |d: u32| self.registry.devices.get(d);
        SnapComp {
            name: self.registry.comps.get(c),
            lkgs: &comp.lkgs,
            lkgs_version: comp.lkgs_version,
            lkgs_from: comp.lkgs_from.0,
            sequence: comp.sequence,
            failures: comp.failures,
            place: match &comp.place {
                Place::Unplaced => SnapPlace::Unplaced,
                Place::Running {
                    device,
                    handle,
                    morph,
                    unproven,
                    ..
                } => SnapPlace::Running {
                    device: name(*device),
                    handle: *handle,
                    morph: *morph,
                    unproven: *unproven,
                },
                Place::Recovering(r) => SnapPlace::Recovering {
                    from: name(r.from),
                    from_session: r.from_session.0,
                    tried: r.tried.iter().map(|t| t.0).collect(),
                    in_flight: r.attempt.and_then(|m| {
                        let a = self.attempts.get(&m)?;
                        Some(SnapAttempt {
                            morph: m,
                            target: name(a.target),
                            session: a.session.0,
                            handle: a.handle,
                        })
                    }),
                },
                Place::Quarantined { .. } => SnapPlace::Quarantined,
                Place::Stopped => SnapPlace::Stopped,
            },
        }
    }
}

/// Which part a change record holds.
#[derive(Clone, Copy, Debug)]
pub(super) enum Part {
    Device(u32),
    Comp(u32),
    Morphs,
}

/// Writes the version byte and `value` into `out`, emptied first (keeping its allocation).
fn encode(value: &impl Serialize, out: &mut Vec<u8>) {
    out.clear();
    out.push(SNAPSHOT_VERSION);
    // Serializing these plain structs into a Vec cannot fail.
    if let Ok(v) = postcard::to_extend(value, core::mem::take(out)) {
        *out = v;
    }
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, SnapshotError> {
    match bytes.split_first() {
        Some((&SNAPSHOT_VERSION, body)) => {
            postcard::from_bytes(body).map_err(|_| SnapshotError::Format)
        }
        _ => Err(SnapshotError::Format),
    }
}
