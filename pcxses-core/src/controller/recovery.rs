//! RECOVERY at the AC: choosing targets, MORPH attempts, failure chaining.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::time::Duration;

use sha2::{Digest as _, Sha256};

use super::session_ids::SessionIds;
use super::{
    auth_of, transmit, Attempt, CompEntry, ComputationId, Controller, ControllerEvent, DeviceId,
    MigrationFailure, Place, Recovery, SessionAuth, SessionEnd, Stage,
};
use crate::error::InputError;
use crate::io::{LinkId, Outbox};
use crate::policy::{AuthLevel, Candidate};
use crate::stats::Stats;
use crate::time::{ms, Instant};
use crate::timer::arm;
use crate::transfer::ChunkSender;
use crate::wire::bottle::{
    Bottle, ChunkAck, Morph, MorphAck, MorphFail, MorphFailReason, ObjectChunk,
};
use crate::wire::ids::{Digest, SessionId};
use crate::wire::manifest::{Manifest, ObjectEntry, StateEntry};
use crate::wire::seq::BoundedSeq;

/// Most failed target sessions one recovery remembers; beyond, the oldest is forgotten and
/// its device is eligible again.
pub(super) const MAX_TRIED: usize = 64;

fn sha256(bytes: &[u8]) -> Digest {
    Digest(Sha256::digest(bytes).into())
}

/// Whether a device can ever host a computation: capabilities and host list.
fn capable(requires: &[Box<str>], hosts: &[u32], device: u32, capabilities: &[Box<str>]) -> bool {
    (hosts.is_empty() || hosts.contains(&device))
        && requires.iter().all(|r| capabilities.contains(r))
}

impl Controller {
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
        let mut any_capable = false;
        let mut free: Vec<(u32, Candidate<'_>)> = Vec::new();
        // Devices overdue with their HELLO (more than half an interval late) go last: when
        // many devices fail at once, those are likely among them, not yet declared dead.
        let mut overdue: Vec<(u32, Candidate<'_>)> = Vec::new();
        for (i, dev) in self.devices.iter().enumerate() {
            let i = i as u32;
            let Some(s) = dev.session.as_ref() else {
                continue;
            };
            // A device whose dead interval has run out is as good as dead: its timer is
            // due in this same pass.
            if s.id == r.from_session
                || s.dead_at <= now
                || r.tried.contains(&s.id)
                || s.auth < required
                || !capable(&comp.requires, &comp.hosts, i, &dev.capabilities)
            {
                continue;
            }
            any_capable = true;
            let load = s.hosted.len() + usize::from(dev.morphs_in);
            if load < usize::from(dev.max_hosted)
                && dev.morphs_in < self.settings.max_morphs_per_target
            {
                let priority = comp.hosts.iter().position(|&h| h == i);
                let candidate = Candidate {
                    device: &dev.name,
                    priority,
                    load,
                };
                let late = ms(s.hello_ms.saturating_add(s.hello_ms / 2));
                if now.saturating_since(s.last_hello) > late || s.id == r.stalled {
                    overdue.push((i, candidate));
                } else {
                    free.push((i, candidate));
                }
            }
        }
        if free.is_empty() {
            free = overdue;
        }
        let candidates: Vec<Candidate<'_>> = free.iter().map(|(_, c)| *c).collect();
        let choice = if candidates.is_empty() {
            None
        } else {
            self.policy.choose(&comp.name, &candidates)
        };
        let target = choice.and_then(|k| free.get(k)).map(|(i, _)| *i);
        match target {
            Some(t) => {
                if self.take_turn(now) {
                    self.start_attempt(c, t, now);
                } else if !self.paced.contains(&c) {
                    self.paced.push_back(c);
                }
            }
            None => {
                self.waiting.insert(c);
                let orphan = !any_capable || (choice.is_none() && !candidates.is_empty());
                if let Place::Recovering(r) = &mut self.comps[c as usize].place {
                    if orphan && !r.orphaned {
                        r.orphaned = true;
                        self.outbox.event(ControllerEvent::Orphaned {
                            computation: ComputationId(c),
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
    fn required_auth(&self, comp: &CompEntry, r: &Recovery) -> AuthLevel {
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
        while let Some(&c) = self.paced.front() {
            if self.next_turn().is_some_and(|t| t > now) {
                return;
            }
            self.paced.pop_front();
            self.place(c, now);
        }
    }

    /// Offers device `d`, which just joined or has a free slot again, to the computations
    /// waiting for a target.
    pub(super) fn offer(&mut self, d: u32, now: Instant) {
        let waiting: Vec<u32> = self.waiting.iter().copied().collect();
        for c in waiting {
            let dev = &self.devices[d as usize];
            let Some(s) = dev.session.as_ref() else {
                return;
            };
            let load = s.hosted.len() + usize::from(dev.morphs_in);
            if load >= usize::from(dev.max_hosted)
                || dev.morphs_in >= self.settings.max_morphs_per_target
            {
                return;
            }
            let comp = &self.comps[c as usize];
            let fits = match &comp.place {
                Place::Recovering(r) => {
                    s.id != r.from_session
                        && !r.tried.contains(&s.id)
                        && s.auth >= self.required_auth(comp, r)
                        && capable(&comp.requires, &comp.hosts, d, &dev.capabilities)
                }
                _ => false,
            };
            if fits {
                self.waiting.remove(&c);
                self.place(c, now);
            }
        }
    }

    /// Hands computation `c`, native to device `d` that just joined, back to it with the
    /// state the AC holds, by MORPH, at once: neither the MORPH pace nor the limit of
    /// MORPHs per target holds it up, as it goes to the device that asked for it. If `d`
    /// is less authenticated than that state's source, the computation is recovered as
    /// after a death instead, to a target authenticated enough.
    pub(super) fn resume(&mut self, c: u32, d: u32, now: Instant) {
        self.waiting.remove(&c);
        self.changes.comp(c);
        let comp = &self.comps[c as usize];
        if matches!(comp.place, Place::Recovering(_)) {
            // Only a recovering computation can be waiting for its turn.
            self.paced.retain(|&p| p != c);
        }
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

    fn start_attempt(&mut self, c: u32, t: u32, now: Instant) {
        self.waiting.remove(&c);
        let comp = &self.comps[c as usize];
        let Place::Recovering(r) = &comp.place else {
            return;
        };
        let Some(s) = self.devices[t as usize].session.as_ref() else {
            return;
        };
        // The MORPH stream: every object, then the LKGS.
        let mut stream = Vec::new();
        let mut objects = BoundedSeq::new();
        for o in comp.objects.iter() {
            let Some(bytes) = self.repo.object(&o.id) else {
                return self.quarantine(c, now);
            };
            let _ = objects.push(ObjectEntry {
                id: &o.id,
                size: bytes.len() as u32,
                sha256: sha256(bytes),
                invoke: o.invoke,
            });
            stream.extend_from_slice(bytes);
        }
        stream.extend_from_slice(&comp.lkgs);
        let from = self
            .devices
            .get(r.from as usize)
            .map_or(&*comp.name, |d| &*d.name);
        let manifest = Manifest {
            computation: &comp.name,
            sequence: comp.sequence + 1,
            target: &self.devices[t as usize].name,
            nonce: s.nonce,
            replaces: from,
            objects,
            state: StateEntry {
                version: comp.lkgs_version,
                size: comp.lkgs.len() as u32,
                sha256: sha256(&comp.lkgs),
            },
        };
        let mut manifest_bytes = alloc::vec![0u8; usize::from(s.max_bottle)];
        let fits = manifest.encode(&mut manifest_bytes).ok().filter(|_| {
            manifest
                .stream_len()
                .is_some_and(|n| n <= self.settings.limits.max_transfer)
        });
        let Some(n) = fits else {
            return self.quarantine(c, now);
        };
        manifest_bytes.truncate(n);
        let morph = self.next_morph;
        self.next_morph = self.next_morph.wrapping_add(1).max(1);
        self.changes.morph_counter();
        self.changes.device(t);
        self.changes.comp(c);
        let (session, chunk) = (s.id, s.chunk);
        let handle = {
            let s = self.devices[t as usize]
                .session
                .as_mut()
                .expect("checked above");
            let h = s.next_handle;
            s.next_handle = s.next_handle.wrapping_add(1);
            h
        };
        self.devices[t as usize].morphs_in += 1;
        let comp = &mut self.comps[c as usize];
        comp.sequence += 1;
        let Place::Recovering(r) = &mut comp.place else {
            return;
        };
        r.attempt = Some(morph);
        r.attempts = r.attempts.saturating_add(1);
        r.orphaned = false;
        let (from, attempt) = (r.from, r.attempts);
        let len = stream.len() as u32;
        self.attempts.insert(
            morph,
            Attempt {
                comp: c,
                target: t,
                session,
                handle,
                started_at: now,
                last_progress: now,
                signature: self.signer.as_ref().map(|s| s.sign(&manifest_bytes)),
                manifest: manifest_bytes,
                stream,
                sender: ChunkSender::new(len, chunk, self.settings.pacing),
                stage: Stage::Header(now),
                rto: self.settings.pacing.rto,
                armed: Instant::MAX,
            },
        );
        self.outbox.event(ControllerEvent::MigrationStarted {
            computation: ComputationId(c),
            from: DeviceId(from),
            to: DeviceId(t),
            attempt,
            at: now,
        });
        self.send_header(morph);
        self.rearm(morph);
    }

    fn target_link(&self, t: u32) -> Option<(LinkId, usize)> {
        self.devices[t as usize]
            .session
            .as_ref()
            .map(|s| (s.link, usize::from(s.max_bottle)))
    }

    fn send_header(&mut self, m: u32) {
        let Some(a) = self.attempts.get(&m) else {
            return;
        };
        let Some((link, max)) = self.target_link(a.target) else {
            return;
        };
        let bottle = Bottle::Morph(Morph {
            session: a.session,
            morph: m,
            handle: a.handle,
            manifest: &a.manifest,
            signature: a.signature,
        });
        let auth = auth_of(&mut self.psk, a.target, a.session);
        transmit(&mut self.outbox, &mut self.stats, link, &bottle, max, auth);
    }

    fn send_cancel(&mut self, m: u32) {
        let Some(a) = self.attempts.get(&m) else {
            return;
        };
        let Some((link, max)) = self.target_link(a.target) else {
            return;
        };
        let bottle = Bottle::MorphFail(MorphFail {
            session: a.session,
            morph: m,
            reason: MorphFailReason::TimedOut,
        });
        self.send(link, &bottle, max);
    }

    fn rearm(&mut self, m: u32) {
        let timeout = self.settings.morph_timeout;
        if let Some(a) = self.attempts.get_mut(&m) {
            let at = a.deadline(timeout);
            arm(&mut self.attempt_timers, &mut a.armed, at, m);
        }
        self.compact_timers();
    }

    /// The attempt `m` towards device `d`'s session, if it is one.
    fn attempt_of(&self, d: u32, session: SessionId, m: u32) -> Result<(), InputError> {
        match self.attempts.get(&m) {
            Some(a) if a.target == d && a.session == session => Ok(()),
            _ => Err(InputError::OutOfPhase("no such MORPH in flight")),
        }
    }

    pub(super) fn on_chunk_ack(
        &mut self,
        d: u32,
        ack: ChunkAck,
        now: Instant,
    ) -> Result<(), InputError> {
        self.attempt_of(d, ack.session, ack.morph)?;
        let Some((link, max)) = self.target_link(d) else {
            return Ok(());
        };
        let Some(a) = self.attempts.get_mut(&ack.morph) else {
            return Ok(());
        };
        match a.stage {
            Stage::Cancelling(..) | Stage::Installing(_) => {
                self.stats.duplicate += 1;
                return Ok(());
            }
            Stage::Header(_) => {
                a.stage = Stage::Streaming;
                a.last_progress = now;
            }
            Stage::Streaming => {}
        }
        if a.sender.on_progress(ack.progress) {
            a.last_progress = now;
        } else {
            self.stats.duplicate += 1;
        }
        let auth = auth_of(&mut self.psk, a.target, a.session);
        pump(
            a,
            ack.morph,
            &mut self.outbox,
            &mut self.stats,
            (link, max, auth),
            now,
        );
        if a.sender.is_done() {
            a.stage = Stage::Installing(now);
            a.rto = self.settings.pacing.rto;
        }
        self.rearm(ack.morph);
        Ok(())
    }

    pub(super) fn on_morph_ack(
        &mut self,
        d: u32,
        ack: MorphAck,
        now: Instant,
    ) -> Result<(), InputError> {
        if self.attempt_of(d, ack.session, ack.morph).is_err() {
            // A repeated ack of a migration that already completed: one of the
            // computations this session hosts came by that MORPH.
            let hosted = self.devices[d as usize].session.as_ref();
            let done = hosted.is_some_and(|s| {
                s.hosted.iter().any(|&(_, c)| {
                    matches!(self.comps[c as usize].place, Place::Running { session, morph, .. } if session == ack.session && morph == ack.morph)
                })
            });
            if done {
                self.stats.duplicate += 1;
                return Ok(());
            }
            return Err(InputError::OutOfPhase("MORPH ack for no MORPH"));
        }
        if matches!(self.attempts[&ack.morph].stage, Stage::Cancelling(..)) {
            // Cancelled: the target will stop it and confirm with MORPH fail.
            return Ok(());
        }
        let Some(a) = self.attempts.remove(&ack.morph) else {
            return Ok(());
        };
        self.devices[d as usize].morphs_in -= 1;
        if let Some(s) = self.devices[d as usize].session.as_mut() {
            s.hosted.push((a.handle, a.comp));
        }
        self.changes.device(d);
        self.changes.comp(a.comp);
        let comp = &mut self.comps[a.comp as usize];
        let Place::Recovering(r) = core::mem::replace(
            &mut comp.place,
            Place::Running {
                device: d,
                session: a.session,
                handle: a.handle,
                morph: ack.morph,
                unproven: true,
            },
        ) else {
            return Ok(());
        };
        self.outbox.event(ControllerEvent::MigrationCompleted {
            computation: ComputationId(a.comp),
            from: DeviceId(r.from),
            to: DeviceId(d),
            detected_at: r.detected_at,
            started_at: a.started_at,
            acked_at: now,
            stream_bytes: a.stream.len() as u32,
        });
        self.offer(d, now);
        Ok(())
    }

    pub(super) fn on_morph_fail(
        &mut self,
        d: u32,
        fail: MorphFail,
        now: Instant,
    ) -> Result<(), InputError> {
        self.attempt_of(d, fail.session, fail.morph)?;
        let reason = match self.attempts[&fail.morph].stage {
            Stage::Cancelling(_, why) => why,
            _ => MigrationFailure::Refused(fail.reason),
        };
        self.finish_failed(fail.morph, reason, now, false);
        Ok(())
    }

    pub(super) fn on_attempt_timer(&mut self, m: u32, now: Instant) {
        let timeout = self.settings.morph_timeout;
        let rto_max = self.settings.pacing.rto_max;
        let Some(a) = self.attempts.get_mut(&m) else {
            return;
        };
        a.armed = Instant::MAX;
        let stalled = now >= a.last_progress + timeout;
        match a.stage {
            Stage::Header(_) | Stage::Streaming | Stage::Installing(_) if stalled => {
                a.stage = Stage::Cancelling(now, MigrationFailure::TimedOut);
                a.rto = self.settings.pacing.rto;
                self.send_cancel(m);
            }
            Stage::Header(sent) if sent + a.rto <= now => {
                a.stage = Stage::Header(now);
                a.rto = (a.rto * 2).min(rto_max);
                self.send_header(m);
            }
            Stage::Installing(sent) if sent + a.rto <= now => {
                a.stage = Stage::Installing(now);
                a.rto = (a.rto * 2).min(rto_max);
                self.send_header(m);
            }
            Stage::Cancelling(sent, why) if sent + a.rto <= now => {
                a.stage = Stage::Cancelling(now, why);
                a.rto = (a.rto * 2).min(rto_max);
                self.send_cancel(m);
            }
            Stage::Streaming => {
                let target = self.devices[a.target as usize].session.as_ref();
                if let Some((link, max)) = target.map(|s| (s.link, usize::from(s.max_bottle))) {
                    let auth = auth_of(&mut self.psk, a.target, a.session);
                    pump(
                        a,
                        m,
                        &mut self.outbox,
                        &mut self.stats,
                        (link, max, auth),
                        now,
                    );
                }
            }
            _ => {}
        }
        self.rearm(m);
    }

    /// Fails every attempt towards `session`, which ended `how`. A target that died or
    /// re-joined while it held the whole stream may have crashed starting the computation:
    /// that counts against the computation. A computation being handed back to a home that
    /// left or re-joined goes back to waiting for its home.
    pub(super) fn abort_attempts_to(&mut self, session: SessionId, how: SessionEnd, now: Instant) {
        let why = match how {
            SessionEnd::Dead => MigrationFailure::TargetDied,
            _ => MigrationFailure::TargetLeft,
        };
        let crashed = matches!(how, SessionEnd::Dead | SessionEnd::Rejoined);
        let doomed: Vec<(u32, MigrationFailure)> = self
            .attempts
            .iter()
            .filter(|(_, a)| a.session == session)
            .map(|(&m, a)| match a.stage {
                Stage::Cancelling(_, earlier) => (m, earlier),
                Stage::Installing(_) if crashed => (m, MigrationFailure::DiedInstalling),
                _ => (m, why),
            })
            .collect();
        for (m, why) in doomed {
            self.finish_failed(m, why, now, how != SessionEnd::Dead);
        }
    }

    /// Ends attempt `m`, which failed. A hand-back to a home that is still alive (`home_alive`:
    /// it left or re-joined) leaves the computation waiting for its home; any other
    /// failure places it again, unless it is quarantined.
    fn finish_failed(&mut self, m: u32, why: MigrationFailure, now: Instant, home_alive: bool) {
        let Some(a) = self.attempts.remove(&m) else {
            return;
        };
        let t = a.target;
        self.devices[t as usize].morphs_in -= 1;
        self.changes.comp(a.comp);
        // Only the first attempt of a recovery hands a computation back to its home.
        let mut handing_back = false;
        if let Place::Recovering(r) = &mut self.comps[a.comp as usize].place {
            handing_back = core::mem::take(&mut r.handing_back);
            r.attempt = None;
            match why {
                MigrationFailure::TimedOut => r.stalled = a.session,
                _ => r.tried_on(a.session, &self.session_ids),
            }
        }
        self.outbox.event(ControllerEvent::MigrationFailed {
            computation: ComputationId(a.comp),
            to: DeviceId(t),
            reason: why,
            at: now,
        });
        let quarantined = why.counts() && self.count_failure(a.comp, now);
        if handing_back && home_alive && !quarantined {
            self.comps[a.comp as usize].place = Place::Unplaced;
        } else if !quarantined {
            self.place(a.comp, now);
        }
        self.offer(t, now);
    }

    /// Counts one more failed target for computation `c`; quarantines it at the limit.
    /// Returns whether it was quarantined.
    pub(super) fn count_failure(&mut self, c: u32, now: Instant) -> bool {
        self.changes.comp(c);
        let comp = &mut self.comps[c as usize];
        comp.failures += 1;
        if comp.failures >= self.settings.quarantine_after {
            self.quarantine(c, now);
            true
        } else {
            false
        }
    }

    fn quarantine(&mut self, c: u32, now: Instant) {
        self.waiting.remove(&c);
        self.changes.comp(c);
        let comp = &mut self.comps[c as usize];
        comp.place = Place::Quarantined;
        comp.quarantines = comp.quarantines.saturating_add(1);
        self.outbox.event(ControllerEvent::Quarantined {
            computation: ComputationId(c),
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
        comp.retry_at = now + base * (1 << doublings);
        self.retry_timers.push(comp.retry_at, c);
        self.compact_timers();
    }

    /// Tries quarantined computation `c` again, from its home device or wherever it last
    /// ran, to targets as authenticated as its state's source: its failure count resets.
    pub(super) fn lift_quarantine(&mut self, c: u32, now: Instant) {
        let comp = &mut self.comps[c as usize];
        if !matches!(comp.place, Place::Quarantined) {
            return;
        }
        comp.failures = 0;
        comp.retry_at = Instant::MAX;
        self.changes.comp(c);
        let from = comp.home.unwrap_or(u32::MAX);
        let mut recovery = Recovery::new(from, SessionId::NONE, now);
        recovery.from_auth = comp.lkgs_auth;
        comp.place = Place::Recovering(Box::new(recovery));
        self.place(c, now);
    }
}

/// Sends the chunks of attempt `m` that are due: new ones while the window has room,
/// retransmissions whose timeout passed. `to` is the target's link, bottle limit and
/// session key.
fn pump(
    a: &mut Attempt,
    m: u32,
    outbox: &mut Outbox<ControllerEvent>,
    stats: &mut Stats,
    to: (LinkId, usize, Option<&mut SessionAuth>),
    now: Instant,
) {
    let (link, max, mut auth) = to;
    if a.stage != Stage::Streaming {
        return;
    }
    while let Some(index) = a.sender.next_to_send(now) {
        let data = &a.stream[a.sender.range(index)];
        let bottle = Bottle::ObjectChunk(ObjectChunk {
            session: a.session,
            morph: m,
            index,
            data,
        });
        transmit(outbox, stats, link, &bottle, max, auth.as_deref_mut());
    }
}

impl Attempt {
    fn deadline(&self, timeout: Duration) -> Instant {
        let stall = self.last_progress + timeout;
        match self.stage {
            Stage::Header(sent) | Stage::Installing(sent) => (sent + self.rto).min(stall),
            Stage::Streaming => self.sender.deadline().map_or(stall, |d| d.min(stall)),
            Stage::Cancelling(sent, _) => sent + self.rto,
        }
    }
}

impl Recovery {
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
