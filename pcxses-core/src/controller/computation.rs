//! The AC's computations: what it knows of each, and where each is in its life cycle.

use alloc::boxed::Box;

use super::event::DeviceId;
use super::recovery::Recovery;
use crate::policy::AuthLevel;
use crate::time::Instant;
use crate::wire::ids::SessionId;

/// One registered computation; its name, objects, host list and requirements are in the
/// [`super::registry::Registry`], by number.
pub(super) struct CompEntry {
    pub(super) lkgs: Box<[u8]>,
    /// Last manifest sequence number issued.
    pub(super) sequence: u64,
    pub(super) place: Place,
    pub(super) home: Option<u32>,
    /// Its object list.
    pub(super) objects: u32,
    /// Its host list.
    pub(super) hosts: u32,
    /// Its requirement set.
    pub(super) requires: u32,
    /// Version of `lkgs` in the session it came from.
    pub(super) lkgs_version: u32,
    pub(super) lkgs_from: SessionId,
    /// Consecutive failed targets.
    pub(super) failures: u32,
    /// Quarantines in a row, without a state stored in between: the retry backs off.
    pub(super) quarantines: u32,
    /// How authenticated the session `lkgs` came from was: the state goes back to no device
    /// less authenticated (unless the configuration allows a downgrade).
    pub(super) lkgs_auth: AuthLevel,
}

impl CompEntry {
    /// The entry of a computation with object list `objects`, host list `hosts` and
    /// requirement set `requires`. Its home is set once the devices are known.
    pub(super) fn new(objects: u32, hosts: u32, requires: u32) -> CompEntry {
        CompEntry {
            objects,
            hosts,
            requires,
            home: None,
            lkgs: Box::default(),
            lkgs_version: 0,
            lkgs_from: SessionId::NONE,
            lkgs_auth: AuthLevel::Unauthenticated,
            sequence: 0,
            failures: 0,
            quarantines: 0,
            place: Place::Unplaced,
        }
    }

    /// Replaces the LKGS's bytes, in place when the length is the same.
    pub(super) fn set_lkgs(&mut self, bytes: &[u8]) {
        match self.lkgs.len() == bytes.len() {
            true => self.lkgs.copy_from_slice(bytes),
            false => self.lkgs = bytes.into(),
        }
    }

    /// When a quarantined computation is tried again; [`Instant::MAX`] otherwise.
    pub(super) fn retry_at(&self) -> Instant {
        match self.place {
            Place::Quarantined { retry_at } => retry_at,
            _ => Instant::MAX,
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
    /// Failed on too many targets in a row; tried again at `retry_at` ([`Instant::MAX`]:
    /// never).
    Quarantined { retry_at: Instant },
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
            Place::Quarantined { .. } => Placement::Quarantined,
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_computation_entry_is_80_bytes() {
        assert_eq!(core::mem::size_of::<super::Place>(), 16);
        assert_eq!(core::mem::size_of::<super::CompEntry>(), 80);
    }
}
