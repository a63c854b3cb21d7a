//! GOOD MORNING, PARTY and GOODBYE at the AC: the registry's devices and their sessions,
//! liveness, state storage, death.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::auth::seal_to;
use super::computation::{CompEntry, Place};
use super::event::{ComputationId, ControllerEvent, DeviceId};
use super::hosted::Hosted;
use super::targets::Slot;
use super::Controller;
use crate::error::InputError;
use crate::io::LinkId;
use crate::limits::MAX_HOSTED;
use crate::policy::AuthLevel;
use crate::psk::TRAILER_LEN;
use crate::time::{ms, Instant};
use crate::timer::arm;
use crate::transfer::{chunk_count, chunk_range, ChunkReceiver, CHUNK_OVERHEAD};
use crate::wire::bottle::{
    Bottle, GoodBye, GoodByeAck, GoodMorning, GoodMorningAck, Hello, HelloAck, Progress,
    RejectReason, StateAck, StateChunk, StateMode,
};
use crate::wire::codec::DecodeError;
use crate::wire::ids::{JoinNonce, SessionId};
use crate::wire::seq::BoundedSeq;

/// The smallest bottle limit a device may announce.
const MIN_BOTTLE: u16 = 64;

/// One registered device; its name, capabilities and own computations are in the
/// [`super::registry::Registry`]. The live session's fields a HELLO touches come first,
/// and the entry starts on a cache line, so that a HELLO reads and writes one line of it.
/// Fields are ordered by size so that `repr(C)` adds no padding: 128 bytes in all.
#[repr(C, align(64))]
pub(super) struct DeviceEntry {
    pub(super) session: Option<Session>,
    /// The link of the retired session: its bottles are answered there only.
    pub(super) retired_link: LinkId,
    /// The last session declared dead or dismissed, still answered as such.
    pub(super) retired: SessionId,
    /// Sessions opened so far: the next session id's generation.
    pub(super) generation: u32,
    /// Its capability set.
    pub(super) caps: u32,
    pub(super) max_hosted: u16,
    /// MORPH attempts towards this device.
    pub(super) morphs_in: u16,
    /// Where the index of targets holds it.
    pub(super) slot: Slot,
    pub(super) retired_status: SessionStatus,
}

impl DeviceEntry {
    /// The entry of a device with room for `max_hosted` computations and capability set
    /// `caps`.
    pub(super) fn new(max_hosted: u16, caps: u32) -> DeviceEntry {
        DeviceEntry {
            caps,
            max_hosted,
            session: None,
            retired: SessionId::NONE,
            retired_status: SessionStatus::Replaced,
            generation: 0,
            morphs_in: 0,
            retired_link: LinkId::default(),
            slot: Slot::Out,
        }
    }
}

/// A live session; the fields of the HELLO path first (see [`DeviceEntry`]).
#[repr(C)]
pub(super) struct Session {
    pub(super) dead_at: Instant,
    pub(super) last_hello: Instant,
    pub(super) link: LinkId,
    pub(super) id: SessionId,
    pub(super) dead_ms: u32,
    pub(super) max_bottle: u16,
    pub(super) chunk: u16,
    pub(super) run_len: u16,
    pub(super) next_handle: u16,
    pub(super) hello_ms: u32,
    pub(super) fence_ms: u32,
    /// The dead timer's live heap entry.
    pub(super) armed: Instant,
    pub(super) nonce: JoinNonce,
    /// `(handle, computation)`; the first `run_len` are the GOOD_MORNING ack's run list.
    pub(super) hosted: Hosted,
    pub(super) mode: StateMode,
    /// How the device was authenticated in this session.
    pub(super) auth: AuthLevel,
}

/// State versions being reassembled, by device and handle: one per hosted computation at
/// most.
pub(super) type Reassemblies = BTreeMap<(u32, u16), StateRx>;

/// A state version being reassembled.
pub(super) struct StateRx {
    version: u32,
    receiver: ChunkReceiver,
}

/// What a session id in the map stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SessionRef {
    pub(super) device: u32,
    pub(super) status: SessionStatus,
}

/// Whether a session is live, or retired and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SessionStatus {
    /// The device's current session.
    Live,
    /// Declared dead: its bottles are answered "replaced".
    Replaced,
    /// Dismissed by the AC: its bottles are answered GOOD_BYE.
    Dismissed,
}

/// How a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SessionEnd {
    /// No HELLO for the dead interval.
    Dead,
    /// GOOD_BYE from the device.
    Left,
    /// GOOD_BYE from the AC.
    Dismissed,
    /// A GOOD_MORNING with a new nonce: the device restarted.
    Rejoined,
}

impl Controller {
    /// What a session id stands for: O(1), no table.
    pub(super) fn lookup(&self, id: SessionId) -> Option<SessionRef> {
        let device = self.session_ids.device_of(id);
        let dev = self.devices.get(device as usize)?;
        if dev.session.as_ref().is_some_and(|s| s.id == id) {
            Some(SessionRef {
                device,
                status: SessionStatus::Live,
            })
        } else if dev.retired == id && id != SessionId::NONE {
            Some(SessionRef {
                device,
                status: dev.retired_status,
            })
        } else {
            None
        }
    }

    /// Whether a bottle naming device `d`'s live (`live`) or retired session may act on it
    /// from `from`: one authenticated by its key or its transport may come from anywhere,
    /// any other only from the session's own link. The session id names a session; it
    /// does not authenticate it.
    pub(super) fn may_come_from(
        &self,
        d: u32,
        from: LinkId,
        identity: Option<&str>,
        live: bool,
    ) -> bool {
        let dev = &self.devices[d as usize];
        let link = match live {
            true => dev.session.as_ref().map(|s| s.link),
            false => Some(dev.retired_link),
        };
        link == Some(from) || self.auth_level(d, identity) == AuthLevel::Authenticated
    }

    /// The device whose live session `id` is, after checking the claimed identity and the
    /// link. Bottles of other sessions are answered as the protocol says and refused.
    pub(super) fn live_session(
        &mut self,
        id: SessionId,
        from: LinkId,
        now: Instant,
        identity: Option<&str>,
    ) -> Result<u32, InputError> {
        let Some(SessionRef { device, status }) = self.lookup(id) else {
            self.reject_unknown(now, from, id);
            return Err(InputError::UnknownSession);
        };
        if identity.is_some_and(|name| name != self.registry.devices.get(device)) {
            return Err(InputError::Unauthorized);
        }
        let live = status == SessionStatus::Live;
        if !self.may_come_from(device, from, identity, live) {
            return Err(self.refuse_wrong_link(now, from, id));
        }
        match status {
            SessionStatus::Live => Ok(device),
            SessionStatus::Replaced => {
                let nonce = JoinNonce::default();
                self.reject(now, from, id, nonce, RejectReason::Replaced, true);
                Err(InputError::Replaced)
            }
            SessionStatus::Dismissed => {
                let bye = Bottle::GoodBye(GoodBye { session: id });
                self.answer(now, from, &bye, true);
                Err(InputError::OutOfPhase("session was dismissed"))
            }
        }
    }

    pub(super) fn on_good_morning(
        &mut self,
        now: Instant,
        from: LinkId,
        gm: GoodMorning<'_>,
        identity: Option<&str>,
    ) -> Result<(), InputError> {
        let none = SessionId::NONE;
        if identity.is_some_and(|name| name != gm.device) {
            self.reject(now, from, none, gm.nonce, RejectReason::Unauthorized, true);
            return Err(InputError::Unauthorized);
        }
        let known = self.registry.devices.find(gm.device);
        let auth = known.map(|d| self.auth_level(d, identity));
        if self.settings.require_auth && auth != Some(AuthLevel::Authenticated) {
            // Refused whatever the name, so that the answer does not tell which are known.
            self.reject(now, from, none, gm.nonce, RejectReason::Unauthorized, false);
            return Err(InputError::Unauthenticated);
        }
        let (Some(d), Some(auth)) = (known, auth) else {
            self.reject(
                now,
                from,
                none,
                gm.nonce,
                RejectReason::UnknownDevice,
                false,
            );
            return Err(InputError::UnknownDevice);
        };
        if gm.max_bottle < MIN_BOTTLE {
            self.reject(now, from, none, gm.nonce, RejectReason::Malformed, false);
            return Err(InputError::Decode(DecodeError::Limit("max_bottle")));
        }
        if let Some(s) = self.devices[d as usize].session.as_mut() {
            if s.nonce == gm.nonce {
                // A retransmission: the same answer again, to where it came from (its 64-bit
                // random nonce is as hard to guess as the answer is to see). It does not
                // count as a HELLO.
                s.link = from;
                self.stats.duplicate += 1;
                self.send_good_morning_ack(d);
                return Ok(());
            }
            self.end_session(d, now, SessionEnd::Rejoined);
        }
        self.open_session(d, now, from, &gm, auth);
        Ok(())
    }

    fn open_session(
        &mut self,
        d: u32,
        now: Instant,
        from: LinkId,
        gm: &GoodMorning<'_>,
        auth: AuthLevel,
    ) {
        let st = &self.settings;
        let hello_ms = st.hello_ms.clamp(gm.hello_ms);
        // Three HELLO intervals at least, so that the fence lease (three quarters of it, at
        // least 2.25 intervals) outlives one lost HELLO and the round trip of the next.
        let dead_ms = st.dead_ms.clamp(gm.dead_ms).max(hello_ms.saturating_mul(3));
        let fence_ms = if st.fencing { dead_ms - dead_ms / 4 } else { 0 };
        let max_bottle = usize::from(gm.max_bottle).min(st.limits.max_bottle);
        let trailer = if self.has_key(d) { TRAILER_LEN } else { 0 };
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
        // The device runs its own computations unless they run, or are arriving, elsewhere:
        // from their initial state if the AC holds no state of theirs, else from that state,
        // which a MORPH hands over once the session is open.
        let mut hosted = Hosted::default();
        let mut resumed = Vec::new();
        for k in 0..self.registry.natives.get(d).len() {
            let c = self.registry.natives.get(d)[k];
            let comp = &mut self.comps[c as usize];
            let free = match &comp.place {
                Place::Unplaced | Place::Stopped => true,
                Place::Recovering(r) => r.attempt.is_none(),
                Place::Running { .. } | Place::Quarantined { .. } => false,
            };
            if free && comp.lkgs_from != SessionId::NONE {
                resumed.push(c);
            } else if free {
                let handle = hosted.len() as u16;
                comp.place = Place::Running {
                    device: d,
                    session: id,
                    handle,
                    morph: 0,
                    unproven: false,
                };
                self.unwait(c);
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
            auth,
        });
        self.reindex(d);
        let s = self.devices[d as usize]
            .session
            .as_mut()
            .map(|s| &mut s.armed);
        if let Some(armed) = s {
            arm(&mut self.dead_timers, armed, dead_at, d);
        }
        self.compact_timers();
        self.keep_join_keys(d, id);
        self.changes.device(d);
        self.send_good_morning_ack(d);
        self.outbox.event(ControllerEvent::DeviceJoined {
            device: DeviceId(d),
            session: id,
            at: now,
        });
        for c in resumed {
            self.resume(c, d, now);
        }
        self.offer(d, now);
    }

    fn send_good_morning_ack(&mut self, d: u32) {
        let Some(s) = self.devices[d as usize].session.as_mut() else {
            return;
        };
        let mut run = BoundedSeq::<&str, MAX_HOSTED>::new();
        for &(_, c) in s.hosted.iter().take(usize::from(s.run_len)) {
            let _ = run.push(self.registry.comps.get(c));
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
        let seal = seal_to(&mut self.psk, d, id);
        (self.outbox).transmit(&mut self.stats, link, &bottle, max, seal);
    }

    pub(super) fn on_hello(
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
        // A device whose address changed keeps its session if its bottles are authenticated
        // (`live_session` refused the others): its HELLOs carry the new link.
        s.link = from;
        // A session restored from a journal learns again that its transport authenticates
        // it.
        let learnt = identity.is_some() && s.auth != AuthLevel::Authenticated;
        if learnt {
            s.auth = AuthLevel::Authenticated;
        }
        s.dead_at = now + ms(s.dead_ms);
        s.last_hello = now;
        self.stats.hellos += 1;
        let ack = Bottle::HelloAck(HelloAck {
            session: s.id,
            seq: h.seq,
        });
        let (link, max, id) = (s.link, usize::from(s.max_bottle), s.id);
        let seal = seal_to(&mut self.psk, d, id);
        (self.outbox).transmit(&mut self.stats, link, &ack, max, seal);
        if learnt {
            self.reindex(d);
        }
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
            // Already stored, or older than what is: acknowledge the version held, so that
            // the device stops resending and learns which state the AC holds.
            self.stats.duplicate += 1;
            let held = Progress {
                next: chunk_count(comp.lkgs.len() as u32, s.chunk),
                sack: 0,
            };
            let version = comp.lkgs_version;
            self.send(link, &ack(version, held), max);
            return Ok(());
        }
        // Refuse a chunk that cannot be part of this state before anything is kept for it.
        match chunk_range(chunk.total_len, s.chunk, chunk.index) {
            Some(r) if r.len() == chunk.data.len() => {}
            _ => return Err(InputError::BadChunk),
        }
        let key = (d, chunk.handle);
        if count == 1 {
            self.reassemblies.remove(&key);
            comp.set_lkgs(chunk.data);
            self.stored(c, d, id, chunk.version, now);
            self.send(link, &ack(chunk.version, full), max);
            return Ok(());
        }
        let rx = match self.reassemblies.get(&key) {
            Some(rx) if rx.version == chunk.version => {
                if rx.receiver.len() != chunk.total_len {
                    return Err(InputError::BadChunk);
                }
                self.reassemblies.get_mut(&key)
            }
            Some(rx) if rx.version > chunk.version => {
                return Err(InputError::OutOfPhase(
                    "chunk of a superseded state version",
                ));
            }
            _ => {
                let rx = StateRx {
                    version: chunk.version,
                    receiver: ChunkReceiver::new(chunk.total_len, s.chunk),
                };
                self.reassemblies.insert(key, rx);
                self.reassemblies.get_mut(&key)
            }
        };
        let Some(rx) = rx else {
            return Err(InputError::BadChunk);
        };
        match rx.receiver.accept(chunk.index, chunk.data) {
            Ok(true) => {}
            Ok(false) => self.stats.duplicate += 1,
            Err(_) => return Err(InputError::BadChunk),
        }
        let progress = rx.receiver.progress();
        if rx.receiver.is_complete() {
            if let Some(mut rx) = self.reassemblies.remove(&key) {
                comp.lkgs = rx.receiver.take_bytes().into_boxed_slice();
            }
            self.stored(c, d, id, chunk.version, now);
        }
        self.send(link, &ack(chunk.version, progress), max);
        Ok(())
    }

    /// Records that `comp.lkgs` now holds `version` from `session` of device `d`.
    fn stored(&mut self, c: u32, d: u32, session: SessionId, version: u32, now: Instant) {
        self.changes.comp(c);
        let auth = self.devices[d as usize].session.as_ref().map(|s| s.auth);
        let comp: &mut CompEntry = &mut self.comps[c as usize];
        comp.lkgs_version = version;
        comp.lkgs_from = session;
        comp.lkgs_auth = auth.unwrap_or(AuthLevel::Unauthenticated);
        comp.quarantines = 0;
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

    pub(super) fn on_good_bye(
        &mut self,
        now: Instant,
        from: LinkId,
        session: SessionId,
        identity: Option<&str>,
    ) -> Result<(), InputError> {
        let ack = Bottle::GoodByeAck(GoodByeAck { session });
        match self.lookup(session) {
            Some(SessionRef {
                device,
                status: SessionStatus::Live,
            }) => {
                if identity.is_some_and(|n| n != self.registry.devices.get(device)) {
                    return Err(InputError::Unauthorized);
                }
                if !self.may_come_from(device, from, identity, true) {
                    // Answered as a GOOD_BYE of a session that is over.
                    self.answer(now, from, &ack, false);
                    return Err(InputError::WrongLink);
                }
                self.end_session(device, now, SessionEnd::Left);
                let max = self.settings.limits.max_bottle;
                self.send(from, &ack, max);
            }
            // A repeated GOOD_BYE whose ack was lost, or one from a session that is over
            // anyway: acknowledge it, change nothing.
            _ => {
                self.stats.duplicate += 1;
                self.answer(now, from, &ack, false);
            }
        }
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
                dev.retired_link = s.link;
                dev.retired_status = SessionStatus::Replaced;
            }
            SessionEnd::Dismissed => {
                dev.retired = s.id;
                dev.retired_link = s.link;
                dev.retired_status = SessionStatus::Dismissed;
            }
            // The device itself ended the session: nothing of it needs answering.
            SessionEnd::Left | SessionEnd::Rejoined => {}
        }
        self.reindex(d);
        let theirs = (d, 0)..=(d, u16::MAX);
        while let Some((&key, _)) = self.reassemblies.range(theirs.clone()).next() {
            self.reassemblies.remove(&key);
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
        self.abort_attempts_to(s.id, how, now);
        for &(_, c) in s.hosted.iter() {
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
                SessionEnd::Rejoined if comp.home == Some(d) => {
                    // It came back by MORPH and its home re-joined before it stored a
                    // state there: the device may have crashed starting it.
                    let unproven = matches!(comp.place, Place::Running { unproven: true, .. });
                    comp.place = Place::Unplaced;
                    if unproven {
                        self.died_after_migration(c, d, now);
                    }
                }
                SessionEnd::Dead | SessionEnd::Rejoined => {
                    self.start_recovery(c, d, (s.id, s.auth), now)
                }
            }
        }
        if matches!(how, SessionEnd::Left | SessionEnd::Dismissed) {
            // Its own computations on their way back to it stop with it, as if they had run.
            for &c in self.registry.natives.get(d) {
                let comp = &mut self.comps[c as usize];
                if matches!(comp.place, Place::Unplaced) {
                    comp.place = Place::Stopped;
                    self.changes.comp(c);
                    self.outbox.event(ControllerEvent::ComputationStopped {
                        computation: ComputationId(c),
                        device: DeviceId(d),
                        at: now,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_device_entry_is_two_cache_lines() {
        assert_eq!(core::mem::size_of::<super::DeviceEntry>(), 128);
    }
}
