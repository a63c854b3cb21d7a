//! MORPH at the AC: the attempts in flight, from the header through the stream and its
//! acknowledgements to the target's answer, their timers, and how each ends.

use alloc::vec::Vec;
use core::time::Duration;

use sha2::{Digest as _, Sha256};

use super::auth::{auth_of, seal_to, SessionAuth};
use super::computation::Place;
use super::event::{ComputationId, ControllerEvent, DeviceId, MigrationFailure, QuarantineReason};
use super::session::SessionEnd;
use super::Controller;
use crate::error::InputError;
use crate::io::{LinkId, Outbox};
use crate::stats::Stats;
use crate::time::Instant;
use crate::timer::arm;
use crate::transfer::ChunkSender;
use crate::wire::bottle::{
    Bottle, ChunkAck, Morph, MorphAck, MorphFail, MorphFailReason, ObjectChunk,
};
use crate::wire::ids::{Digest, SessionId, Signature};
use crate::wire::manifest::{Manifest, ObjectEntry, StateEntry};
use crate::wire::seq::BoundedSeq;

/// One MORPH attempt in flight.
pub(super) struct Attempt {
    comp: u32,
    pub(super) target: u32,
    pub(super) session: SessionId,
    pub(super) handle: u16,
    started_at: Instant,
    last_progress: Instant,
    manifest: Vec<u8>,
    signature: Option<Signature>,
    stream: Vec<u8>,
    sender: ChunkSender,
    stage: Stage,
    /// Retransmission timeout of the header or the cancel.
    rto: Duration,
    pub(super) armed: Instant,
}

/// Where a MORPH attempt is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// MORPH header sent at the instant, no answer yet.
    Header(Instant),
    /// The target acknowledged the header: the stream flows.
    Streaming,
    /// The target holds the whole stream; the MORPH header, sent again at the instant,
    /// asks for its answer (MORPH ack or fail), which a lost datagram would otherwise
    /// keep from the AC.
    Installing(Instant),
    /// Abandoned: MORPH fail sent to the target at the instant; waiting for its MORPH
    /// fail (or death) before the computation moves on.
    Cancelling(Instant, MigrationFailure),
}

fn sha256(bytes: &[u8]) -> Digest {
    Digest(Sha256::digest(bytes).into())
}

impl Controller {
    /// Starts a MORPH of computation `c`, which is recovering, to device `t`: the manifest
    /// and the stream of its objects and LKGS, then the header. A computation whose
    /// objects are missing or too large for a MORPH is quarantined.
    pub(super) fn start_attempt(&mut self, c: u32, t: u32, now: Instant) {
        self.unwait(c);
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
        for o in self.registry.objects.get(comp.objects) {
            let Some(bytes) = self.repo.object(&o.id) else {
                return self.quarantine(c, QuarantineReason::MissingObject, now);
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
        let name = self.registry.comps.get(c);
        let from = match r.from < self.registry.devices.len() {
            true => self.registry.devices.get(r.from),
            false => name,
        };
        let manifest = Manifest {
            computation: name,
            sequence: comp.sequence + 1,
            target: self.registry.devices.get(t),
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
            return self.quarantine(c, QuarantineReason::TooLarge, now);
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
        self.reindex(t);
        let comp = &mut self.comps[c as usize];
        comp.sequence += 1;
        let Place::Recovering(r) = &mut comp.place else {
            return;
        };
        let (from, attempt) = (r.from, r.attempt_started(morph));
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

    /// Re-creates MORPH `m` of computation `c` to target `t`'s session `session`, which was
    /// in flight when the AC stopped, as one being cancelled: the target confirms
    /// with MORPH fail (or dies) before the computation is offered elsewhere.
    pub(super) fn restore_cancelling(
        &mut self,
        c: u32,
        t: u32,
        (m, session, handle): (u32, SessionId, u16),
        now: Instant,
    ) {
        let chunk = self.devices[t as usize]
            .session
            .as_ref()
            .map_or(64, |s| s.chunk);
        let rto = self.settings.pacing.rto;
        self.devices[t as usize].morphs_in += 1;
        self.reindex(t);
        self.attempts.insert(
            m,
            Attempt {
                comp: c,
                target: t,
                session,
                handle,
                started_at: now,
                last_progress: now,
                manifest: Vec::new(),
                signature: None,
                stream: Vec::new(),
                sender: ChunkSender::new(0, chunk, self.settings.pacing),
                stage: Stage::Cancelling(Instant::default(), MigrationFailure::TimedOut),
                rto,
                armed: Instant::MAX,
            },
        );
        self.on_attempt_timer(m, now);
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
        let seal = seal_to(&mut self.psk, a.target, a.session);
        (self.outbox).transmit(&mut self.stats, link, &bottle, max, seal);
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
        if let Some(a) = self.attempts.get_mut(m) {
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
        let Some(a) = self.attempts.get_mut(ack.morph) else {
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
        if a.sender.on_progress(ack.progress, now) {
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
        let Some(a) = self.attempts.remove(ack.morph) else {
            return Ok(());
        };
        self.devices[d as usize].morphs_in -= 1;
        if let Some(s) = self.devices[d as usize].session.as_mut() {
            s.hosted.push((a.handle, a.comp));
        }
        self.reindex(d);
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
        let Some(a) = self.attempts.get_mut(m) else {
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
        let d = self.session_ids.device_of(session);
        if self
            .devices
            .get(d as usize)
            .is_none_or(|dev| dev.morphs_in == 0)
        {
            return;
        }
        let why = match how {
            SessionEnd::Dead => MigrationFailure::TargetDied,
            _ => MigrationFailure::TargetLeft,
        };
        let crashed = matches!(how, SessionEnd::Dead | SessionEnd::Rejoined);
        let doomed: Vec<(u32, MigrationFailure)> = (self.attempts.to(d))
            .filter(|(_, a)| a.session == session)
            .map(|(m, a)| match a.stage {
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
        let Some(a) = self.attempts.remove(m) else {
            return;
        };
        let t = a.target;
        self.devices[t as usize].morphs_in -= 1;
        self.reindex(t);
        self.changes.comp(a.comp);
        let handing_back = match &mut self.comps[a.comp as usize].place {
            Place::Recovering(r) => r.attempt_failed(a.session, why, &self.session_ids),
            _ => false,
        };
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
        let seal = auth.as_deref_mut().map(SessionAuth::seal);
        outbox.transmit(stats, link, &bottle, max, seal);
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
