//! GOOD MORNING, PARTY and GOODBYE at the AC: sessions, liveness, state storage, death.

use alloc::vec::Vec;

use super::{
    auth_of, transmit, CompEntry, Controller, ControllerEvent, DeviceId, MigrationFailure, Place,
    Recovery, Session, SessionEnd, SessionRef, SessionStatus, StateRx,
};
use crate::bottle::{
    Bottle, GoodByeAck, GoodMorning, GoodMorningAck, Hello, HelloAck, Progress, Reject,
    RejectReason, StateAck, StateChunk,
};
use crate::codec::DecodeError;
use crate::controller::ComputationId;
use crate::error::InputError;
use crate::ids::{JoinNonce, SessionId};
use crate::io::LinkId;
use crate::limits::MAX_HOSTED;
use crate::time::{ms, Instant};
use crate::timer::arm;
use crate::transfer::{chunk_count, chunk_range, ChunkReceiver};
use crate::BoundedSeq;

/// Bytes a chunk-carrying bottle needs besides its data, at most (HELLO with a state
/// chunk, every varint at its longest).
pub(crate) const CHUNK_OVERHEAD: usize = 32;

/// The smallest bottle limit a device may announce.
pub(crate) const MIN_BOTTLE: u16 = 64;

impl Controller {
    pub(super) fn refuse_undecodable(&mut self, from: LinkId, e: DecodeError) -> InputError {
        if let DecodeError::Version(_) = e {
            self.stats.bad_version += 1;
            self.reject(
                from,
                SessionId::NONE,
                JoinNonce::default(),
                RejectReason::BadVersion,
            );
        } else {
            self.stats.malformed += 1;
        }
        InputError::Decode(e)
    }

    pub(super) fn on_bottle(
        &mut self,
        now: Instant,
        from: LinkId,
        bottle: Bottle<'_>,
        identity: Option<&str>,
    ) -> Result<(), InputError> {
        match bottle {
            Bottle::GoodMorning(gm) => self.on_good_morning(now, from, gm, identity),
            Bottle::Hello(h) => self.on_hello(now, from, h, identity),
            Bottle::State(s) => {
                let d = self.live_session(s.session, from, now, identity)?;
                self.on_state_chunk(d, s.chunk, now)
            }
            Bottle::ChunkAck(a) => {
                let d = self.live_session(a.session, from, now, identity)?;
                self.on_chunk_ack(d, a, now)
            }
            Bottle::MorphAck(a) => {
                let d = self.live_session(a.session, from, now, identity)?;
                self.on_morph_ack(d, a, now)
            }
            Bottle::MorphFail(f) => {
                let d = self.live_session(f.session, from, now, identity)?;
                self.on_morph_fail(d, f, now)
            }
            Bottle::GoodBye(g) => self.on_good_bye(now, from, g.session, identity),
            Bottle::GoodByeAck(g) => match self.lookup(g.session) {
                Some(r) if r.status == SessionStatus::Dismissed => {
                    self.devices[r.device as usize].retired = SessionId::NONE;
                    self.changes.device(r.device);
                    Ok(())
                }
                _ => Err(InputError::OutOfPhase("GOOD_BYE ack without GOOD_BYE")),
            },
            Bottle::GoodMorningAck(_)
            | Bottle::HelloAck(_)
            | Bottle::StateAck(_)
            | Bottle::Morph(_)
            | Bottle::ObjectChunk(_)
            | Bottle::Reject(_)
            | Bottle::Challenge(_) => Err(InputError::OutOfPhase("bottle for a device")),
        }
    }

    fn reject(&mut self, to: LinkId, session: SessionId, nonce: JoinNonce, reason: RejectReason) {
        let bottle = Bottle::Reject(Reject {
            session,
            nonce,
            reason,
        });
        let max = self.settings.limits.max_bottle;
        self.send(to, &bottle, max);
    }

    /// The device whose live session `id` is, after checking the claimed identity. Bottles
    /// of other sessions are answered as the protocol says and refused.
    pub(super) fn live_session(
        &mut self,
        id: SessionId,
        from: LinkId,
        now: Instant,
        identity: Option<&str>,
    ) -> Result<u32, InputError> {
        let Some(SessionRef { device, status }) = self.lookup(id) else {
            self.reject(from, id, JoinNonce::default(), RejectReason::UnknownSession);
            return Err(InputError::UnknownSession);
        };
        let dev = &mut self.devices[device as usize];
        if identity.is_some_and(|name| name != &*dev.name) {
            return Err(InputError::Unauthorized);
        }
        match status {
            SessionStatus::Live => Ok(device),
            SessionStatus::Replaced => {
                // Answer at most once per minimum HELLO interval: enough to reach a
                // device that is still sending, without amplifying a flood.
                if now >= dev.last_reject + ms(self.settings.hello_ms.min) {
                    dev.last_reject = now;
                    self.reject(from, id, JoinNonce::default(), RejectReason::Replaced);
                }
                Err(InputError::Replaced)
            }
            SessionStatus::Dismissed => {
                let max = self.settings.limits.max_bottle;
                self.send(
                    from,
                    &Bottle::GoodBye(crate::bottle::GoodBye { session: id }),
                    max,
                );
                Err(InputError::OutOfPhase("session was dismissed"))
            }
        }
    }

    fn on_good_morning(
        &mut self,
        now: Instant,
        from: LinkId,
        gm: GoodMorning<'_>,
        identity: Option<&str>,
    ) -> Result<(), InputError> {
        if identity.is_some_and(|name| name != gm.device) {
            self.reject(from, SessionId::NONE, gm.nonce, RejectReason::Unauthorized);
            return Err(InputError::Unauthorized);
        }
        let Some(&d) = self.device_index.get(gm.device) else {
            self.reject(from, SessionId::NONE, gm.nonce, RejectReason::UnknownDevice);
            return Err(InputError::UnknownDevice);
        };
        if gm.max_bottle < MIN_BOTTLE {
            self.reject(from, SessionId::NONE, gm.nonce, RejectReason::Malformed);
            return Err(InputError::Decode(DecodeError::Limit("max_bottle")));
        }
        if let Some(s) = self.devices[d as usize].session.as_mut() {
            if s.nonce == gm.nonce {
                // A retransmission: the same answer again. It does not count as a HELLO.
                s.link = from;
                self.stats.duplicate += 1;
                self.send_good_morning_ack(d);
                return Ok(());
            }
            self.end_session(d, now, SessionEnd::Rejoined);
        }
        self.open_session(d, now, from, &gm);
        Ok(())
    }

    fn open_session(&mut self, d: u32, now: Instant, from: LinkId, gm: &GoodMorning<'_>) {
        let st = &self.settings;
        let hello_ms = st.hello_ms.clamp(gm.hello_ms);
        // Three HELLO intervals at least, so that the fence lease (three quarters of it, at
        // least 2.25 intervals) outlives one lost HELLO and the round trip of the next.
        let dead_ms = st.dead_ms.clamp(gm.dead_ms).max(hello_ms.saturating_mul(3));
        let fence_ms = if st.fencing { dead_ms - dead_ms / 4 } else { 0 };
        let max_bottle = usize::from(gm.max_bottle).min(st.limits.max_bottle);
        let sealed = self.psk.get(d as usize).is_some_and(Option::is_some);
        let trailer = if sealed { crate::psk::TRAILER_LEN } else { 0 };
        let chunk = (max_bottle - CHUNK_OVERHEAD - trailer) as u16;
        let mode = st.mode.unwrap_or(gm.mode);
        let dev = &mut self.devices[d as usize];
        let id = loop {
            let generation = dev.generation;
            dev.generation = dev.generation.wrapping_add(1);
            if let Some(id) = self.session_ids.make(d, generation) {
                break id;
            }
        };
        // The device runs its own computations unless they run, or are arriving, elsewhere.
        let mut hosted = Vec::new();
        for &c in self.devices[d as usize].native.iter() {
            let comp = &mut self.comps[c as usize];
            let free = match &comp.place {
                Place::Unplaced | Place::Stopped => true,
                Place::Recovering(r) => r.attempt.is_none(),
                Place::Running { .. } | Place::Quarantined => false,
            };
            if free {
                let handle = hosted.len() as u16;
                comp.place = Place::Running {
                    device: d,
                    session: id,
                    handle,
                    morph: 0,
                    unproven: false,
                };
                self.waiting.remove(&c);
                self.changes.comp(c);
                hosted.push((handle, c));
            }
        }
        let dead_at = now + ms(dead_ms);
        let run_len = hosted.len() as u16;
        self.devices[d as usize].session = Some(Session {
            id,
            link: from,
            nonce: gm.nonce,
            mode,
            hello_ms,
            dead_ms,
            fence_ms,
            chunk,
            max_bottle: max_bottle as u16,
            dead_at,
            armed: Instant::MAX,
            last_hello: now,
            hosted,
            run_len,
            next_handle: run_len,
            rx: Vec::new(),
        });
        let s = self.devices[d as usize]
            .session
            .as_mut()
            .map(|s| &mut s.armed);
        if let Some(armed) = s {
            arm(&mut self.dead_timers, armed, dead_at, d);
        }
        self.keep_join_keys(d, id);
        self.changes.device(d);
        self.send_good_morning_ack(d);
        self.outbox.event(ControllerEvent::DeviceJoined {
            device: DeviceId(d),
            session: id,
            at: now,
        });
        self.offer(d, now);
    }

    fn send_good_morning_ack(&mut self, d: u32) {
        let Some(s) = self.devices[d as usize].session.as_mut() else {
            return;
        };
        let mut run = BoundedSeq::<&str, MAX_HOSTED>::new();
        for &(_, c) in s.hosted.iter().take(usize::from(s.run_len)) {
            let _ = run.push(&self.comps[c as usize].name);
        }
        let bottle = Bottle::GoodMorningAck(GoodMorningAck {
            session: s.id,
            nonce: s.nonce,
            mode: s.mode,
            hello_ms: s.hello_ms,
            dead_ms: s.dead_ms,
            fence_ms: s.fence_ms,
            chunk_size: s.chunk,
            run,
        });
        let (link, max, id) = (s.link, usize::from(s.max_bottle), s.id);
        let auth = auth_of(&mut self.psk, d, id);
        transmit(&mut self.outbox, &mut self.stats, link, &bottle, max, auth);
    }

    fn on_hello(
        &mut self,
        now: Instant,
        from: LinkId,
        h: Hello<'_>,
        identity: Option<&str>,
    ) -> Result<(), InputError> {
        let d = self.live_session(h.session, from, now, identity)?;
        let Some(s) = self.devices[d as usize].session.as_mut() else {
            return Err(InputError::UnknownSession);
        };
        // A device whose address changed keeps its session: its HELLOs carry the new link.
        s.link = from;
        s.dead_at = now + ms(s.dead_ms);
        s.last_hello = now;
        let ack = Bottle::HelloAck(HelloAck {
            session: s.id,
            seq: h.seq,
        });
        let (link, max, id) = (s.link, usize::from(s.max_bottle), s.id);
        let auth = auth_of(&mut self.psk, d, id);
        transmit(&mut self.outbox, &mut self.stats, link, &ack, max, auth);
        if let Some(chunk) = h.state {
            // The HELLO counted; a bad chunk riding on it is counted on its own.
            if let Err(e) = self.on_state_chunk(d, chunk, now) {
                self.stats.count(&e);
            }
        }
        Ok(())
    }

    /// Stores a state chunk of a computation hosted by device `d`'s live session and
    /// acknowledges what the AC holds of that version.
    pub(super) fn on_state_chunk(
        &mut self,
        d: u32,
        chunk: StateChunk<'_>,
        now: Instant,
    ) -> Result<(), InputError> {
        let Some(s) = self.devices[d as usize].session.as_mut() else {
            return Err(InputError::UnknownSession);
        };
        let Some(&(_, c)) = s.hosted.iter().find(|(h, _)| *h == chunk.handle) else {
            return Err(InputError::OutOfPhase("state for a computation not hosted"));
        };
        let count = chunk_count(chunk.total_len, s.chunk);
        let comp = &mut self.comps[c as usize];
        let full = Progress {
            next: count,
            sack: 0,
        };
        let (id, link, max) = (s.id, s.link, usize::from(s.max_bottle));
        let ack = |version, progress| {
            Bottle::StateAck(StateAck {
                session: id,
                handle: chunk.handle,
                version,
                progress,
            })
        };
        if comp.lkgs_from == id && chunk.version <= comp.lkgs_version {
            // Already stored (or older): acknowledge again so the device stops resending.
            self.stats.duplicate += 1;
            self.send(link, &ack(chunk.version, full), max);
            return Ok(());
        }
        // Refuse a chunk that cannot be part of this state before anything is kept for it.
        match chunk_range(chunk.total_len, s.chunk, chunk.index) {
            Some(r) if r.len() == chunk.data.len() => {}
            _ => return Err(InputError::BadChunk),
        }
        if count == 1 {
            s.rx.retain(|r| r.handle != chunk.handle);
            comp.lkgs.clear();
            comp.lkgs.extend_from_slice(chunk.data);
            self.stored(c, d, id, chunk.version, now);
            self.send(link, &ack(chunk.version, full), max);
            return Ok(());
        }
        let pos = match s.rx.iter().position(|r| r.handle == chunk.handle) {
            Some(p) if s.rx[p].version == chunk.version => {
                if s.rx[p].receiver.len() != chunk.total_len {
                    return Err(InputError::BadChunk);
                }
                p
            }
            Some(p) if s.rx[p].version > chunk.version => {
                return Err(InputError::OutOfPhase(
                    "chunk of a superseded state version",
                ));
            }
            found => {
                let rx = StateRx {
                    handle: chunk.handle,
                    version: chunk.version,
                    receiver: ChunkReceiver::new(chunk.total_len, s.chunk),
                };
                match found {
                    Some(p) => {
                        s.rx[p] = rx;
                        p
                    }
                    None => {
                        s.rx.push(rx);
                        s.rx.len() - 1
                    }
                }
            }
        };
        let rx = &mut s.rx[pos];
        match rx.receiver.accept(chunk.index, chunk.data) {
            Ok(true) => {}
            Ok(false) => self.stats.duplicate += 1,
            Err(_) => return Err(InputError::BadChunk),
        }
        let progress = rx.receiver.progress();
        if rx.receiver.is_complete() {
            let rx = s.rx.swap_remove(pos);
            comp.lkgs = rx.receiver.into_bytes();
            self.stored(c, d, id, chunk.version, now);
        }
        self.send(link, &ack(chunk.version, progress), max);
        Ok(())
    }

    /// Records that `comp.lkgs` now holds `version` from `session` of device `d`.
    fn stored(&mut self, c: u32, d: u32, session: SessionId, version: u32, now: Instant) {
        self.changes.comp(c);
        let comp: &mut CompEntry = &mut self.comps[c as usize];
        comp.lkgs_version = version;
        comp.lkgs_from = session;
        if let Place::Running { unproven, .. } = &mut comp.place {
            if *unproven {
                *unproven = false;
                comp.failures = 0;
            }
        }
        self.outbox.event(ControllerEvent::StateStored {
            computation: ComputationId(c),
            device: DeviceId(d),
            version,
            len: comp.lkgs.len(),
            at: now,
        });
    }

    fn on_good_bye(
        &mut self,
        now: Instant,
        from: LinkId,
        session: SessionId,
        identity: Option<&str>,
    ) -> Result<(), InputError> {
        match self.lookup(session) {
            Some(SessionRef {
                device,
                status: SessionStatus::Live,
            }) => {
                if identity.is_some_and(|n| n != &*self.devices[device as usize].name) {
                    return Err(InputError::Unauthorized);
                }
                self.end_session(device, now, SessionEnd::Left);
            }
            // A repeated GOOD_BYE whose ack was lost, or one from a session that is over
            // anyway: acknowledge it, change nothing.
            _ => self.stats.duplicate += 1,
        }
        let max = self.settings.limits.max_bottle;
        self.send(from, &Bottle::GoodByeAck(GoodByeAck { session }), max);
        Ok(())
    }

    pub(super) fn on_dead_timer(&mut self, d: u32, now: Instant) {
        let Some(s) = self.devices[d as usize].session.as_mut() else {
            return;
        };
        s.armed = Instant::MAX;
        if s.dead_at > now {
            let at = s.dead_at;
            arm(&mut self.dead_timers, &mut s.armed, at, d);
        } else {
            self.end_session(d, now, SessionEnd::Dead);
        }
    }

    /// Ends device `d`'s live session and decides the fate of what it hosted.
    pub(super) fn end_session(&mut self, d: u32, now: Instant, how: SessionEnd) {
        let dev = &mut self.devices[d as usize];
        let Some(s) = dev.session.take() else { return };
        self.changes.device(d);
        match how {
            SessionEnd::Dead => {
                dev.retired = s.id;
                dev.retired_status = SessionStatus::Replaced;
            }
            SessionEnd::Dismissed => {
                dev.retired = s.id;
                dev.retired_status = SessionStatus::Dismissed;
            }
            // The device itself ended the session: nothing of it needs answering.
            SessionEnd::Left | SessionEnd::Rejoined => {}
        }
        match how {
            SessionEnd::Dead => self.outbox.event(ControllerEvent::DeviceFailed {
                device: DeviceId(d),
                session: s.id,
                last_hello: s.last_hello,
                at: now,
            }),
            SessionEnd::Left | SessionEnd::Dismissed => {
                self.outbox.event(ControllerEvent::DeviceLeft {
                    device: DeviceId(d),
                    at: now,
                })
            }
            SessionEnd::Rejoined => {}
        }
        let failure = match how {
            SessionEnd::Dead => MigrationFailure::TargetDied,
            _ => MigrationFailure::TargetLeft,
        };
        self.abort_attempts_to(s.id, failure, now);
        for &(_, c) in &s.hosted {
            self.changes.comp(c);
            let comp = &mut self.comps[c as usize];
            match how {
                SessionEnd::Left | SessionEnd::Dismissed => {
                    comp.place = Place::Stopped;
                    self.outbox.event(ControllerEvent::ComputationStopped {
                        computation: ComputationId(c),
                        device: DeviceId(d),
                        at: now,
                    });
                }
                SessionEnd::Rejoined if comp.home == Some(d) => comp.place = Place::Unplaced,
                SessionEnd::Dead | SessionEnd::Rejoined => self.start_recovery(c, d, s.id, now),
            }
        }
    }

    /// Begins recovering computation `c` from device `from`.
    fn start_recovery(&mut self, c: u32, from: u32, session: SessionId, now: Instant) {
        let comp = &mut self.comps[c as usize];
        let unproven = matches!(comp.place, Place::Running { unproven: true, .. });
        let recovery = Recovery::new(from, session, now);
        comp.place = Place::Recovering(alloc::boxed::Box::new(recovery));
        if unproven {
            // It arrived by MORPH and its host died before storing any state: one more
            // failed target in a row.
            self.outbox.event(ControllerEvent::MigrationFailed {
                computation: ComputationId(c),
                to: DeviceId(from),
                reason: MigrationFailure::DiedAfterMigration,
                at: now,
            });
            if self.count_failure(c, now) {
                return;
            }
        }
        self.place(c, now);
    }
}
