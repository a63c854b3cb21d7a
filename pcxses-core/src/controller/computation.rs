//! The AC's computations: what it knows of each, and where each is in its life cycle.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::config::{ComputationSpec, ObjectSpec};
use super::event::DeviceId;
use super::recovery::Recovery;
use crate::policy::AuthLevel;
use crate::time::Instant;
use crate::wire::ids::SessionId;

/// One registered computation.
pub(super) struct CompEntry {
    pub(super) name: Box<str>,
    pub(super) objects: Box<[ObjectSpec]>,
    pub(super) hosts: Box<[u32]>,
    pub(super) requires: Box<[Box<str>]>,
    pub(super) home: Option<u32>,
    pub(super) lkgs: Vec<u8>,
    /// Version of `lkgs` in the session it came from.
    pub(super) lkgs_version: u32,
    pub(super) lkgs_from: SessionId,
    /// How authenticated the session `lkgs` came from was: the state goes back to no device
    /// less authenticated (unless the configuration allows a downgrade).
    pub(super) lkgs_auth: AuthLevel,
    /// Last manifest sequence number issued.
    pub(super) sequence: u64,
    /// Consecutive failed targets.
    pub(super) failures: u32,
    /// Quarantines in a row, without a state stored in between: the retry backs off.
    pub(super) quarantines: u32,
    /// When a quarantined computation is tried again; [`Instant::MAX`] otherwise.
    pub(super) retry_at: Instant,
    pub(super) place: Place,
}

impl CompEntry {
    /// The entry of configured computation `spec`, given the registry's devices by name
    /// (its configuration was validated: they include its hosts). Its home is set once the
    /// devices are known.
    pub(super) fn new(spec: &ComputationSpec, devices: &BTreeMap<Box<str>, u32>) -> CompEntry {
        CompEntry {
            name: spec.name.as_str().into(),
            objects: spec.objects.clone().into_boxed_slice(),
            hosts: spec.hosts.iter().map(|h| devices[h.as_str()]).collect(),
            requires: spec.requires.iter().map(|r| r.as_str().into()).collect(),
            home: None,
            lkgs: Vec::new(),
            lkgs_version: 0,
            lkgs_from: SessionId::NONE,
            lkgs_auth: AuthLevel::Unauthenticated,
            sequence: 0,
            failures: 0,
            quarantines: 0,
            retry_at: Instant::MAX,
            place: Place::Unplaced,
        }
    }
}

/// Where a computation is in its life cycle.
pub(super) enum Place {
    /// Not running: its home has not joined yet.
    Unplaced,
    /// Running on `device`'s session `session`, as `handle`.
    Running {
        device: u32,
        session: SessionId,
        handle: u16,
        /// The MORPH that brought it here; 0 when it runs on its home device.
        morph: u32,
        /// Arrived by MORPH and has not stored a state on this host yet.
        unproven: bool,
    },
    /// Its host failed: it moves to another device.
    Recovering(Box<Recovery>),
    /// Failed on too many targets in a row.
    Quarantined,
    /// Its host left with GOOD_BYE: never recovered.
    Stopped,
}

impl Place {
    /// The place as the public API reports it.
    pub(super) fn placement(&self) -> Placement {
        match self {
            Place::Unplaced => Placement::Unplaced,
            Place::Running { device, .. } => Placement::Running(DeviceId(*device)),
            Place::Recovering(r) if r.attempt.is_some() => Placement::Migrating,
            Place::Recovering(r) if r.orphaned => Placement::Orphaned,
            Place::Recovering(_) => Placement::Waiting,
            Place::Quarantined => Placement::Quarantined,
            Place::Stopped => Placement::Stopped,
        }
    }
}

/// Where a computation is, as [`Controller::placement`](super::Controller::placement)
/// reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Not running: its home device has not joined.
    Unplaced,
    /// Running on this device.
    Running(DeviceId),
    /// Being moved: a MORPH is in flight.
    Migrating,
    /// Recovering, waiting for a target with room.
    Waiting,
    /// Recovering, with no capable device alive: retried when one joins.
    Orphaned,
    /// Failed on too many targets in a row; tried again after a backoff
    /// ([`ControllerConfig::quarantine_retry`](super::ControllerConfig::quarantine_retry))
    /// or when [`Controller::release`](super::Controller::release)d.
    Quarantined,
    /// Its host left with GOOD_BYE: it is not recovered.
    Stopped,
}
