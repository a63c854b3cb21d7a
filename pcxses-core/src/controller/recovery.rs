//! RECOVERY at the AC: which computation moves where and when — targets, pacing,
//! hand-backs to a home that joined — and failure chaining into quarantine.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::computation::{CompEntry, Place};
use super::event::{
    ComputationId, ControllerEvent, DeviceId, MigrationFailure, OrphanReason, QuarantineReason,
};
use super::session_ids::SessionIds;
use super::Controller;
use crate::policy::{AuthLevel, Candidate};
use crate::time::Instant;
use crate::wire::ids::SessionId;

/// Most failed target sessions one recovery remembers; beyond, the oldest is forgotten and
/// its device is eligible again.
const MAX_TRIED: usize = 64;

/// A computation on its way to another device.
pub(super) struct Recovery {
    pub(super) from: u32,
    /// The failed session: its device may host the computation again once it re-joins.
    pub(super) from_session: SessionId,
    pub(super) detected_at: Instant,
    /// Sessions of targets that failed in this recovery, at most one per device (its
    /// latest) and [`MAX_TRIED`] in all, oldest first; a target that joins again
    /// is a new incarnation and eligible again.
    pub(super) tried: Vec<SessionId>,
    /// The last target whose MORPH made no progress: tried again only when no other target
    /// is free, since a stall says more about the network than about the target.
    pub(super) stalled: SessionId,
    /// The computation is being handed back to its home, which just joined, with its LKGS:
    /// if the home leaves or re-joins meanwhile, it waits for its home again.
    handing_back: bool,
    /// How authenticated the failed session was: the computation moves only to targets at
    /// least as authenticated (unless the configuration allows a downgrade).
    from_auth: AuthLevel,
    /// The MORPH attempt in flight, by morph id.
    pub(super) attempt: Option<u32>,
    pub(super) attempts: u32,
    pub(super) orphaned: bool,
}

impl Controller {
    /// Begins recovering computation `c` from device `from`.
    pub(super) fn start_recovery(
        &mut self,
        c: u32,
        from: u32,
        (session, auth): (SessionId, AuthLevel),
        now: Instant,
    ) {
        let comp = &mut self.comps[c as usize];
        let unproven = matches!(comp.place, Place::Running { unproven: true, .. });
        let mut recovery = Recovery::new(from, session, now);
        recovery.from_auth = auth;
        comp.place = Place::Recovering(Box::new(recovery));
        if unproven && self.died_after_migration(c, from, now) {
            return;
        }
        self.place(c, now);
    }

    /// Computation `c` arrived on device `d` by MORPH, and `d` died or re-joined before it
    /// stored a state there: one more failed target in a row. Returns whether that
    /// quarantined it.
    pub(super) fn died_after_migration(&mut self, c: u32, d: u32, now: Instant) -> bool {
        self.outbox.event(ControllerEvent::MigrationFailed {
            computation: ComputationId(c),
            to: DeviceId(d),
            reason: MigrationFailure::DiedAfterMigration,
            at: now,
        });
        self.count_failure(c, now)
    }

    /// Tries to start a MORPH for computation `c`, which is recovering without an attempt
    /// in flight. Without a free target it waits; without any capable one it is orphaned.
    pub(super) fn place(&mut self, c: u32, now: Instant) {
        let comp = &self.comps[c as usize];
        let Place::Recovering(r) = &comp.place else {
            return;
        };
        if r.attempt.is_some() {
            return;
        }
        let required = self.required_auth(comp, r);
        let search = self.search(comp, r, required, now);
        let candidates: Vec<Candidate<'_>> = (search.candidates().iter())
            .map(|&(d, load, priority)| Candidate {
                device: self.registry.devices.get(d),
                priority,
                load,
            })
            .collect();
        let choice = if candidates.is_empty() {
            None
        } else {
            self.policy.choose(self.registry.comps.get(c), &candidates)
        };
        let declined = choice.is_none() && !candidates.is_empty();
        drop(candidates);
        let target = choice.and_then(|k| search.candidates().get(k)).map(|f| f.0);
        match target {
            Some(t) => {
                if self.take_turn(now) {
                    self.start_attempt(c, t, now);
                } else {
                    self.paced.push(c);
                }
            }
            None => {
                self.wait(c);
                let reason = if !search.any_capable {
                    Some(OrphanReason::NoCapableDevice)
                } else if !search.any_authenticated {
                    Some(OrphanReason::NoAuthenticatedDevice)
                } else if declined {
                    Some(OrphanReason::PolicyDeclined)
                } else {
                    // Capable targets exist, all busy: it waits for a free one.
                    None
                };
                if let Place::Recovering(r) = &mut self.comps[c as usize].place {
                    if let Some(reason) = reason.filter(|_| !r.orphaned) {
                        r.orphaned = true;
                        self.outbox.event(ControllerEvent::Orphaned {
                            computation: ComputationId(c),
                            reason,
                            at: now,
                        });
                    }
                }
            }
        }
    }

    /// The least authenticated target computation `comp`, recovering by `r`, may move to:
    /// as authenticated as the session it failed on, as its home device's live session,
    /// and as its home and source devices are configured to be (a pre-shared key), unless
    /// the configuration allows less.
    pub(super) fn required_auth(&self, comp: &CompEntry, r: &Recovery) -> AuthLevel {
        if self.settings.allow_auth_downgrade {
            return AuthLevel::Unauthenticated;
        }
        let keyed = comp.home.is_some_and(|h| self.has_key(h)) || self.has_key(r.from);
        let home = comp
            .home
            .and_then(|h| self.devices.get(h as usize)?.session.as_ref());
        let home = home.map_or(AuthLevel::Unauthenticated, |s| s.auth);
        match keyed {
            true => AuthLevel::Authenticated,
            false => r.from_auth.max(home),
        }
    }

    /// When the next MORPH may start under the configured pace (`None`: no limit).
    pub(super) fn next_turn(&self) -> Option<Instant> {
        let (_, burst) = self.settings.pace?;
        let at = self
            .pace_tat
            .as_micros()
            .saturating_sub(burst.as_micros() as u64);
        Some(Instant::from_micros(at))
    }

    /// Whether a MORPH may start now under the configured pace; if so, it counts.
    fn take_turn(&mut self, now: Instant) -> bool {
        let Some((every, _)) = self.settings.pace else {
            return true;
        };
        if self.next_turn().is_some_and(|t| t > now) {
            return false;
        }
        self.pace_tat = self.pace_tat.max(now) + every;
        true
    }

    /// Starts the paced computations whose turn has come, oldest first.
    pub(super) fn release_paced(&mut self, now: Instant) {
        while let Some(c) = self.paced.front() {
            if self.next_turn().is_some_and(|t| t > now) {
                return;
            }
            self.paced.pop_front();
            self.place(c, now);
        }
    }

    /// Hands computation `c`, native to device `d` that just joined, back to it with the
    /// state the AC holds, by MORPH, at once: neither the MORPH pace nor the limit of
    /// MORPHs per target holds it up, as it goes to the device that asked for it. If `d`
    /// is less authenticated than that state's source, the computation is recovered as
    /// after a death instead, to a target authenticated enough.
    pub(super) fn resume(&mut self, c: u32, d: u32, now: Instant) {
        self.unwait(c);
        self.changes.comp(c);
        self.paced.remove(c);
        let comp = &self.comps[c as usize];
        let (from, detected_at, from_auth) = match &comp.place {
            Place::Recovering(r) => (r.from, r.detected_at, r.from_auth.max(comp.lkgs_auth)),
            _ => (d, now, comp.lkgs_auth),
        };
        let mut recovery = Recovery::new(from, SessionId::NONE, detected_at);
        recovery.from_auth = from_auth;
        let required = self.required_auth(comp, &recovery);
        let auth = self.devices[d as usize].session.as_ref().map(|s| s.auth);
        recovery.handing_back = auth.is_some_and(|a| a >= required);
        let home = recovery.handing_back;
        self.comps[c as usize].place = Place::Recovering(Box::new(recovery));
        if home {
            self.start_attempt(c, d, now);
        } else {
            self.place(c, now);
        }
    }

    /// Counts one more failed target for computation `c`; quarantines it at the limit.
    /// Returns whether it was quarantined.
    pub(super) fn count_failure(&mut self, c: u32, now: Instant) -> bool {
        self.changes.comp(c);
        let comp = &mut self.comps[c as usize];
        comp.failures += 1;
        if comp.failures >= self.settings.quarantine_after {
            self.quarantine(c, QuarantineReason::Failures, now);
            true
        } else {
            false
        }
    }

    pub(super) fn quarantine(&mut self, c: u32, reason: QuarantineReason, now: Instant) {
        self.unwait(c);
        self.changes.comp(c);
        let comp = &mut self.comps[c as usize];
        comp.place = Place::Quarantined {
            retry_at: Instant::MAX,
        };
        comp.quarantines = comp.quarantines.saturating_add(1);
        self.outbox.event(ControllerEvent::Quarantined {
            computation: ComputationId(c),
            reason,
            failures: comp.failures,
            at: now,
        });
        self.schedule_retry(c, now);
    }

    /// Arms the retry of quarantined computation `c`: the configured wait, doubled for
    /// each quarantine in a row before this one, 16 times at most.
    pub(super) fn schedule_retry(&mut self, c: u32, now: Instant) {
        let Some(base) = self.settings.quarantine_retry else {
            return;
        };
        let comp = &mut self.comps[c as usize];
        let doublings = comp.quarantines.saturating_sub(1).min(4);
        let at = now + base * (1 << doublings);
        if let Place::Quarantined { retry_at } = &mut comp.place {
            *retry_at = at;
            self.retry_timers.push(at, c);
            self.compact_timers();
        }
    }

    /// Tries quarantined computation `c` again, from its home device or wherever it last
    /// ran, to targets as authenticated as its state's source: its failure count resets.
    pub(super) fn lift_quarantine(&mut self, c: u32, now: Instant) {
        let comp = &mut self.comps[c as usize];
        if !matches!(comp.place, Place::Quarantined { .. }) {
            return;
        }
        comp.failures = 0;
        self.changes.comp(c);
        let from = comp.home.unwrap_or(u32::MAX);
        let mut recovery = Recovery::new(from, SessionId::NONE, now);
        recovery.from_auth = comp.lkgs_auth;
        comp.place = Place::Recovering(Box::new(recovery));
        self.place(c, now);
    }
}

impl Recovery {
    /// A recovery from device `from`'s session `from_session`, which failed at
    /// `detected_at`.
    pub(super) fn new(from: u32, from_session: SessionId, detected_at: Instant) -> Recovery {
        Recovery {
            from,
            from_session,
            detected_at,
            tried: Vec::new(),
            stalled: SessionId::NONE,
            handing_back: false,
            attempt: None,
            attempts: 0,
            orphaned: false,
            from_auth: AuthLevel::Unauthenticated,
        }
    }

    /// MORPH `morph` starts: returns how many this recovery has started.
    pub(super) fn attempt_started(&mut self, morph: u32) -> u32 {
        self.attempt = Some(morph);
        self.attempts = self.attempts.saturating_add(1);
        self.orphaned = false;
        self.attempts
    }

    /// The MORPH to target session `session` failed `why`: a target that stalled is tried
    /// again only when no other is free, any other not at all. Returns whether it was
    /// handing the computation back to its home: only the first attempt of a recovery
    /// does.
    pub(super) fn attempt_failed(
        &mut self,
        session: SessionId,
        why: MigrationFailure,
        ids: &SessionIds,
    ) -> bool {
        self.attempt = None;
        match why {
            MigrationFailure::TimedOut => self.stalled = session,
            _ => self.tried_on(session, ids),
        }
        core::mem::take(&mut self.handing_back)
    }

    /// Remembers that the target session `session` failed. It replaces any earlier session
    /// of its device, which can never be live again; beyond [`MAX_TRIED`] the oldest is
    /// forgotten.
    fn tried_on(&mut self, session: SessionId, ids: &SessionIds) {
        let d = ids.device_of(session);
        self.tried.retain(|&s| ids.device_of(s) != d);
        self.tried.push(session);
        if self.tried.len() > MAX_TRIED {
            self.tried.remove(0);
        }
    }
}
