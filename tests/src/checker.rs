//! The protocol's invariants, checked after every step of a simulation.

use std::collections::HashSet;

use pcxses_core::controller::{ComputationId, DeviceId, MigrationFailure, Placement};
use pcxses_core::{Controller, ControllerEvent, SessionId};

use crate::app::decode_count;

/// What the checker has counted, to show that a run exercised the protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Devices declared dead.
    pub deaths: u64,
    /// Migrations acknowledged.
    pub migrations: u64,
    /// MORPH attempts that failed.
    pub failed_attempts: u64,
    /// Computations quarantined.
    pub quarantined: u64,
    /// Computations orphaned.
    pub orphaned: u64,
    /// States stored by the AC.
    pub states: u64,
    /// Installs checked against the AC's LKGS.
    pub installs: u64,
    /// Devices that left with GOOD_BYE, as the AC saw it.
    pub leaves: u64,
    /// Computations stopped by their device because its fence lease ran out.
    pub fenced: u64,
    /// Steps of computations taken, each checked against the tracked fence lease.
    pub steps: u64,
    /// Steps the application skipped because the device's lease did not cover them.
    pub skipped: u64,
    /// Computations started from their initial state (`Joined { run }`).
    pub fresh_starts: u64,
    /// Computations started from an LKGS that had a count above zero.
    pub resumed: u64,
}

/// How a computation was started on a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartKind {
    /// Named in `DeviceEvent::Joined { run }`: from its initial state.
    Joined,
    /// Installed by MORPH (`DeviceEvent::Install`): from the LKGS that came with it.
    Install,
}

/// Tracks the AC's event stream and checks it is in protocol order, and checks installs
/// and every start of a computation against the state the AC acknowledged.
#[derive(Debug)]
pub struct Checker {
    joined: Vec<bool>,
    /// Computations stopped because their host said GOOD_BYE, not running since.
    stopped: Vec<bool>,
    open: Vec<Option<DeviceId>>,
    lkgs: Vec<Vec<u8>>,
    /// The home device of each computation.
    homes: Vec<usize>,
    /// Computations quarantined at least once.
    quarantined: Vec<bool>,
    /// Every session id each device was given.
    sessions: Vec<HashSet<SessionId>>,
    /// What happened so far.
    pub counts: Counts,
}

impl Checker {
    /// A checker for `devices` devices and one computation per entry of `homes`, which
    /// names the computation's home device.
    pub fn new(devices: usize, homes: Vec<usize>) -> Checker {
        let computations = homes.len();
        Checker {
            joined: vec![false; devices],
            stopped: vec![false; computations],
            open: vec![None; computations],
            lkgs: vec![Vec::new(); computations],
            homes,
            quarantined: vec![false; computations],
            sessions: vec![HashSet::new(); devices],
            counts: Counts::default(),
        }
    }

    /// Checks one AC event against the order of the protocol.
    pub fn on_ac_event(&mut self, ev: &ControllerEvent, ac: &Controller) -> Result<(), String> {
        let d = |id: &DeviceId| id.0 as usize;
        let c = |id: &ComputationId| id.0 as usize;
        match ev {
            ControllerEvent::DeviceJoined {
                device, session, ..
            } => {
                expect(
                    self.sessions[d(device)].insert(*session),
                    "a device was given a session id again",
                )?;
                self.joined[d(device)] = true;
                // A stopped computation runs again once its home device re-joins: named in
                // the run list, or MORPHed back with its LKGS.
                for (i, stopped) in self.stopped.iter_mut().enumerate() {
                    let id = ComputationId(i as u32);
                    if *stopped
                        && (self.homes[i] == d(device)
                            || matches!(ac.placement(id), Some(Placement::Running(_))))
                    {
                        *stopped = false;
                    }
                }
            }
            ControllerEvent::DeviceFailed { device, .. } => {
                expect(
                    self.joined[d(device)],
                    "death of a device that had not joined",
                )?;
                self.joined[d(device)] = false;
                self.counts.deaths += 1;
            }
            ControllerEvent::DeviceLeft { device, .. } => {
                expect(
                    self.joined[d(device)],
                    "leave of a device that had not joined",
                )?;
                self.joined[d(device)] = false;
                self.counts.leaves += 1;
            }
            ControllerEvent::ComputationStopped {
                computation,
                device,
                ..
            } => {
                expect(
                    !self.joined[d(device)],
                    "computation stopped on a joined device",
                )?;
                self.stopped[c(computation)] = true;
            }
            ControllerEvent::StateStored {
                computation,
                device,
                ..
            } => {
                expect(
                    self.joined[d(device)],
                    "state stored from a device not joined",
                )?;
                expect(
                    ac.placement(*computation) == Some(Placement::Running(*device)),
                    "state stored from a device that does not host the computation",
                )?;
                let (bytes, _) = ac.lkgs(*computation).ok_or("no LKGS after StateStored")?;
                self.lkgs[c(computation)] = bytes.to_vec();
                self.counts.states += 1;
            }
            ControllerEvent::MigrationStarted {
                computation, to, ..
            } => {
                expect(
                    self.open[c(computation)].is_none(),
                    "two MORPHs of one computation",
                )?;
                expect(
                    !self.stopped[c(computation)],
                    "migration of a computation stopped by GOOD_BYE",
                )?;
                // The failed session is over, so this also covers the failed device: it is a
                // target again only once it joined anew.
                expect(self.joined[d(to)], "MORPH to a device not joined")?;
                self.open[c(computation)] = Some(*to);
            }
            ControllerEvent::MigrationCompleted {
                computation,
                to,
                detected_at,
                started_at,
                acked_at,
                ..
            } => {
                expect(
                    self.open[c(computation)] == Some(*to),
                    "MORPH ack without MORPH",
                )?;
                expect(
                    detected_at <= started_at && started_at <= acked_at,
                    "timings out of order",
                )?;
                self.open[c(computation)] = None;
                self.counts.migrations += 1;
            }
            ControllerEvent::MigrationFailed {
                computation,
                to,
                reason,
                ..
            } => {
                if *reason == MigrationFailure::DiedAfterMigration {
                    expect(
                        self.open[c(computation)].is_none(),
                        "host death during a MORPH",
                    )?;
                } else {
                    expect(
                        self.open[c(computation)] == Some(*to),
                        "MORPH failure without MORPH",
                    )?;
                    self.open[c(computation)] = None;
                }
                self.counts.failed_attempts += 1;
            }
            ControllerEvent::Quarantined { computation, .. } => {
                expect(
                    self.open[c(computation)].is_none(),
                    "quarantine during a MORPH",
                )?;
                self.quarantined[c(computation)] = true;
                self.counts.quarantined += 1;
            }
            ControllerEvent::Orphaned { computation, .. } => {
                expect(
                    self.open[c(computation)].is_none(),
                    "orphaned during a MORPH",
                )?;
                self.counts.orphaned += 1;
            }
            _ => {}
        }
        self.check_tables(ac)
    }

    /// The AC's tables stay within their bounds.
    fn check_tables(&self, ac: &Controller) -> Result<(), String> {
        let (devices, comps) = (self.joined.len(), self.open.len());
        let o = ac.occupancy();
        expect(
            o.attempts <= comps,
            "more MORPHs in flight than computations",
        )?;
        expect(
            o.waiting <= comps && o.paced <= comps,
            "a computation waits twice",
        )?;
        expect(
            o.tried <= comps * devices.min(64),
            "a recovery remembers more than one session per device",
        )?;
        expect(
            o.reassemblies <= devices * pcxses_core::MAX_HOSTED,
            "more state reassemblies than hosted computations",
        )?;
        expect(
            o.timers <= 2 * (devices + comps) + 130,
            "stale timers pile up",
        )
    }

    /// An install must carry exactly the LKGS the AC last stored for the computation.
    pub fn on_install(&mut self, computation: ComputationId, lkgs: &[u8]) -> Result<(), String> {
        self.counts.installs += 1;
        expect(
            self.lkgs[computation.0 as usize] == lkgs,
            "installed LKGS differs from the last state the AC acknowledged",
        )
    }

    /// The count of the latest state the AC acknowledged for `computation`, if any.
    pub fn acknowledged(&self, computation: ComputationId) -> Option<u64> {
        let lkgs = &self.lkgs[computation.0 as usize];
        (!lkgs.is_empty()).then(|| decode_count(lkgs))
    }

    /// Whether `computation` was quarantined at some time.
    pub fn was_quarantined(&self, computation: ComputationId) -> bool {
        self.quarantined[computation.0 as usize]
    }

    /// Invariant I2: a computation that starts resumes from the latest state the AC
    /// acknowledged. Started by `Joined { run }`, it starts from its initial state, which is
    /// right only while the AC holds no LKGS of it; installed, it starts from exactly the
    /// AC's LKGS (the install's bytes are checked by [`Checker::on_install`]). `count` is
    /// the count the application started from.
    pub fn on_start(
        &mut self,
        computation: ComputationId,
        name: &str,
        how: StartKind,
        count: u64,
    ) -> Result<(), String> {
        let acked = self.acknowledged(computation);
        match (how, acked) {
            (StartKind::Joined, Some(n)) => {
                return Err(format!(
                    "I2: {name} started from its initial state (named in Joined run) while \
                     the AC holds its LKGS at count {n}"
                ))
            }
            (StartKind::Joined, None) => self.counts.fresh_starts += 1,
            (StartKind::Install, _) => {}
        }
        let from = acked.unwrap_or(0);
        if count != from {
            return Err(format!(
                "I2: {name} started at count {count}, not from its acknowledged LKGS at count \
                 {from}"
            ));
        }
        if from > 0 {
            self.counts.resumed += 1;
        }
        Ok(())
    }
}

fn expect(ok: bool, what: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(what.into())
    }
}
