//! What the Area Controller holds, as its operator sees it: each device's liveness and
//! session, each computation's placement, LKGS and recovery. Read-only: taking a status
//! changes nothing in the machine.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::time::Duration;

use super::computation::{CompEntry, Place};
use super::event::{ComputationId, DeviceId};
use super::session::{DeviceEntry, SessionStatus};
use super::{Controller, Placement};
use crate::io::LinkId;
use crate::policy::AuthLevel;
use crate::time::{ms, Instant};
use crate::wire::ids::SessionId;

/// Whether a device is up, as far as the AC knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Liveness {
    /// It has a live session: its HELLOs arrive within its dead interval.
    Alive,
    /// Its last session was declared dead (no HELLO for the dead interval).
    Dead,
    /// It said GOOD_BYE, or was dismissed: its computations stopped.
    Left,
    /// It has not joined since the registry was loaded.
    Unseen,
}

impl Liveness {
    /// The liveness as a lower-case word: `alive`, `dead`, `left` or `unseen`.
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Alive => "alive",
            Liveness::Dead => "dead",
            Liveness::Left => "left",
            Liveness::Unseen => "unseen",
        }
    }
}

/// A device's live session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveSession {
    /// The session.
    pub id: SessionId,
    /// The link its bottles last came from: the transport maps it to the peer's address.
    pub link: LinkId,
    /// How authenticated the device is in this session.
    pub auth: AuthLevel,
    /// The HELLO interval agreed at the join.
    pub hello: Duration,
    /// The dead interval agreed at the join.
    pub dead: Duration,
    /// How long ago its last HELLO (or its join) arrived.
    pub last_hello_age: Duration,
    /// The computations it runs, natively or by MORPH, in the order it was given them.
    pub hosted: Vec<ComputationId>,
}

/// One registered device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceStatus {
    /// The device.
    pub id: DeviceId,
    /// Its name in the registry.
    pub name: Box<str>,
    /// Whether it is up.
    pub liveness: Liveness,
    /// Its live session, when [`Liveness::Alive`].
    pub session: Option<LiveSession>,
    /// MORPH attempts towards it in flight.
    pub incoming_morphs: u16,
}

/// A computation being recovered from a failed host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoveryStatus {
    /// The device it is recovered from.
    pub from: DeviceId,
    /// How long ago its host's failure was detected.
    pub since: Duration,
    /// MORPH attempts started in this recovery.
    pub attempts: u32,
    /// The target of the MORPH in flight, if one is.
    pub target: Option<DeviceId>,
}

/// One registered computation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComputationStatus {
    /// The computation.
    pub id: ComputationId,
    /// Its name in the registry.
    pub name: Box<str>,
    /// The device that runs it natively, if one does.
    pub home: Option<DeviceId>,
    /// Where it is in its life cycle.
    pub placement: Placement,
    /// The version of its LKGS in the session it came from (0: none stored yet).
    pub lkgs_version: u32,
    /// The length of its LKGS in bytes.
    pub lkgs_len: usize,
    /// Consecutive failed targets (towards quarantine).
    pub failures: u32,
    /// Quarantines in a row without a state stored in between.
    pub quarantines: u32,
    /// The recovery under way, when it is recovering.
    pub recovery: Option<RecoveryStatus>,
    /// When quarantined: how long until it is tried again, if it will be.
    pub retry_in: Option<Duration>,
}

/// Everything [`Controller::status`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerStatus {
    /// The devices, in registry order (indexed by [`DeviceId`]).
    pub devices: Vec<DeviceStatus>,
    /// The computations, in registry order (indexed by [`ComputationId`]).
    pub computations: Vec<ComputationStatus>,
}

/// How many devices and computations are in each state: [`Controller::census`], without
/// the cost of a whole [`ControllerStatus`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// Devices [`Liveness::Alive`].
    pub alive: usize,
    /// Devices [`Liveness::Dead`].
    pub dead: usize,
    /// Devices [`Liveness::Left`].
    pub left: usize,
    /// Devices [`Liveness::Unseen`].
    pub unseen: usize,
    /// Computations [`Placement::Running`].
    pub running: usize,
    /// Computations recovering: [`Placement::Migrating`], [`Placement::Waiting`] or
    /// [`Placement::Orphaned`].
    pub recovering: usize,
    /// Computations [`Placement::Quarantined`].
    pub quarantined: usize,
    /// Computations [`Placement::Stopped`] or [`Placement::Unplaced`].
    pub idle: usize,
}

fn liveness(d: &DeviceEntry) -> Liveness {
    if d.session.is_some() {
        Liveness::Alive
    } else if d.retired != SessionId::NONE && d.retired_status == SessionStatus::Replaced {
        Liveness::Dead
    } else if d.generation > 0 {
        Liveness::Left
    } else {
        Liveness::Unseen
    }
}

impl Controller {
    /// Every device and computation as they are at `now` (ages are measured to `now`).
    /// It allocates for each device and computation: for counts alone, see
    /// [`Controller::census`].
    pub fn status(&self, now: Instant) -> ControllerStatus {
        let devices = (self.devices.iter().enumerate())
            .map(|(i, d)| DeviceStatus {
                id: DeviceId(i as u32),
                name: self.registry.devices.get(i as u32).into(),
                liveness: liveness(d),
                session: d.session.as_ref().map(|s| LiveSession {
                    id: s.id,
                    link: s.link,
                    auth: s.auth,
                    hello: ms(s.hello_ms),
                    dead: ms(s.dead_ms),
                    last_hello_age: now.saturating_since(s.last_hello),
                    hosted: s.hosted.iter().map(|&(_, c)| ComputationId(c)).collect(),
                }),
                incoming_morphs: d.morphs_in,
            })
            .collect();
        let computations = (self.comps.iter().enumerate())
            .map(|(i, c)| self.computation_status(i as u32, c, now))
            .collect();
        ControllerStatus {
            devices,
            computations,
        }
    }

    /// How many devices and computations are in each state; it allocates nothing.
    pub fn census(&self) -> Census {
        let mut census = Census::default();
        for d in &self.devices {
            match liveness(d) {
                Liveness::Alive => census.alive += 1,
                Liveness::Dead => census.dead += 1,
                Liveness::Left => census.left += 1,
                Liveness::Unseen => census.unseen += 1,
            }
        }
        for c in &self.comps {
            match c.place.placement() {
                Placement::Running(_) => census.running += 1,
                Placement::Migrating | Placement::Waiting | Placement::Orphaned => {
                    census.recovering += 1
                }
                Placement::Quarantined => census.quarantined += 1,
                Placement::Stopped | Placement::Unplaced => census.idle += 1,
            }
        }
        census
    }

    fn computation_status(&self, i: u32, c: &CompEntry, now: Instant) -> ComputationStatus {
        let recovery = match &c.place {
            Place::Recovering(r) => Some(RecoveryStatus {
                from: DeviceId(r.from),
                since: now.saturating_since(r.detected_at),
                attempts: r.attempts,
                target: (r.attempt)
                    .and_then(|m| self.attempts.get(&m))
                    .map(|a| DeviceId(a.target)),
            }),
            _ => None,
        };
        let retry_at = c.retry_at();
        ComputationStatus {
            id: ComputationId(i),
            name: self.registry.comps.get(i).into(),
            home: c.home.map(DeviceId),
            placement: c.place.placement(),
            lkgs_version: c.lkgs_version,
            lkgs_len: c.lkgs.len(),
            failures: c.failures,
            quarantines: c.quarantines,
            recovery,
            retry_in: (retry_at != Instant::MAX).then(|| retry_at.saturating_since(now)),
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::controller::{ComputationSpec, ControllerConfig, DeviceSpec};
    use crate::MemoryRepository;

    #[test]
    fn a_registry_nobody_joined_is_unseen_and_unplaced() {
        let config = ControllerConfig::new(
            1,
            vec![
                DeviceSpec::new("dev0", &["comp0"]),
                DeviceSpec::new("dev1", &[]),
            ],
            vec![ComputationSpec::new("comp0", "c0")],
        );
        let now = Instant::from_millis(5);
        let ac = Controller::new(config, MemoryRepository::default(), now).unwrap();
        let status = ac.status(now);
        assert_eq!(status.devices.len(), 2);
        assert_eq!(&*status.devices[1].name, "dev1");
        assert!(status
            .devices
            .iter()
            .all(|d| d.liveness == Liveness::Unseen && d.session.is_none()));
        let comp = &status.computations[0];
        assert_eq!(comp.placement, Placement::Unplaced);
        assert_eq!(comp.home, Some(DeviceId(0)));
        assert_eq!(
            (comp.lkgs_version, comp.lkgs_len, comp.recovery),
            (0, 0, None)
        );
        let census = ac.census();
        assert_eq!((census.unseen, census.alive, census.idle), (2, 0, 1));
    }
}
