//! PARTY at the device: the session the AC opened, its HELLOs and the state of the
//! computations it runs.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::event::{DeviceEvent, StopReason};
use super::morph::{Incoming, Outcome};
use super::{Device, Phase};
use crate::error::InputError;
use crate::io::LinkId;
use crate::name::Name;
use crate::time::{ms, ms_micros, Instant};
use crate::transfer::{ChunkSender, MicroPacing, RttEstimate, CHUNK_OVERHEAD};
use crate::wire::bottle::{
    Bottle, GoodMorningAck, Hello, HelloAck, StateAck, StateBottle, StateChunk, StateMode,
};
use crate::wire::codec::DecodeError;
use crate::wire::ids::{JoinNonce, SessionId};

/// HELLO send times remembered for matching acks.
const SENT_RING: usize = 16;
/// Unacknowledged state versions remembered per computation after a newer one replaced
/// them.
const SUPERSEDED: usize = 8;

/// A session the AC opened, and what runs in it.
pub(super) struct Session {
    pub(super) id: SessionId,
    pub(super) mode: StateMode,
    /// The HELLO interval the AC granted, ms.
    pub(super) hello_ms: u32,
    /// The fence interval, ms; zero when fencing is off.
    pub(super) fence_ms: u32,
    /// The dead interval, ms.
    pub(super) dead_ms: u32,
    pub(super) chunk: u16,
    /// Fence lease: the computations may run until then.
    pub(super) lease_until: Instant,
    /// Set while the computations wait for the session's first lease: since when. They
    /// start (event `Joined`) once a HELLO ack gives one.
    pub(super) waiting_since: Option<Instant>,
    pub(super) next_hello_at: Instant,
    /// When the latest HELLO's ack is overdue: a HELLO goes early then, so that one lost
    /// HELLO or ack costs a fraction of an interval of lease, not a whole one.
    pub(super) ack_due: Instant,
    /// Smoothed round trip of HELLO and ack, µs.
    pub(super) srtt: Option<u64>,
    pub(super) seq: u16,
    pub(super) sent: [(u16, Instant); SENT_RING],
    pub(super) comps: Vec<Hosted>,
    /// MORPHs being received or waiting for the application.
    pub(super) incoming: Vec<Incoming>,
    pub(super) nonce: JoinNonce,
    /// Recent MORPH outcomes, answered again on a duplicate.
    pub(super) outcomes: Vec<Outcome>,
    /// The highest MORPH id of this session that passed every check: older headers are
    /// stale. A new session (a new AC, or one that restarted) starts again from 0.
    pub(super) max_morph: u32,
    /// Last manifest sequence number accepted in this session, per computation. Manifests
    /// of earlier sessions name another join nonce and are refused anyway.
    pub(super) sequences: Vec<(Name, u64)>,
}

impl Session {
    /// The HELLO interval, µs.
    pub(super) fn hello(&self) -> u64 {
        ms_micros(self.hello_ms)
    }

    /// The fence interval, µs; `None` when fencing is off.
    pub(super) fn fence(&self) -> Option<u64> {
        (self.fence_ms > 0).then(|| ms_micros(self.fence_ms))
    }

    /// The dead interval, µs.
    pub(super) fn dead(&self) -> u64 {
        ms_micros(self.dead_ms)
    }
}

/// `(7 · srtt + rtt) / 8`, rounded down, without overflow.
fn smooth(srtt: u64, rtt: u64) -> u64 {
    (srtt >> 3) * 7 + (rtt >> 3) + ((srtt & 7) * 7 + (rtt & 7)) / 8
}

/// A computation running in the session.
pub(super) struct Hosted {
    pub(super) handle: u16,
    /// The MORPH that brought it; `None` for one the GOOD_MORNING ack named.
    pub(super) morph: Option<u32>,
    pub(super) name: Name,
    pub(super) state: Vec<u8>,
    pub(super) version: u32,
    /// Sends `state` as `version` until the AC holds all of it.
    pub(super) sender: Option<ChunkSender>,
    /// Versions replaced by a newer one before the AC acknowledged all of them, with their
    /// chunk counts, oldest first: an ack of one still tells which state the AC holds.
    pub(super) superseded: Vec<(u32, u32)>,
    /// The newest version the AC acknowledged holding, reported with `StateStored`.
    pub(super) stored: Option<u32>,
    /// What the last sender of this computation's state measured of the path.
    pub(super) rtt: Option<RttEstimate>,
}

impl Hosted {
    /// A computation that has reported no state yet: `handle` in the session, brought by
    /// `morph` (`None`: named by the GOOD_MORNING ack), holding `state`.
    pub(super) fn new(handle: u16, morph: Option<u32>, name: Name, state: Vec<u8>) -> Hosted {
        Hosted {
            handle,
            morph,
            name,
            state,
            version: 0,
            sender: None,
            superseded: Vec::new(),
            stored: None,
            rtt: None,
        }
    }

    /// Makes `state` the next version to send, in chunks of `chunk` bytes; returns whether
    /// it is one: a state equal to the last one is not sent again.
    pub(super) fn update(&mut self, state: &[u8], chunk: u16, pacing: MicroPacing) -> bool {
        if self.state == state {
            return false;
        }
        if let Some(sender) = self.sender.as_ref() {
            if self.superseded.len() == SUPERSEDED {
                self.superseded.remove(0);
            }
            self.superseded.push((self.version, sender.chunks()));
        }
        self.state.clear();
        self.state.extend_from_slice(state);
        self.version = self.version.wrapping_add(1);
        let rtt = self
            .sender
            .as_ref()
            .and_then(ChunkSender::estimate)
            .or(self.rtt);
        self.rtt = rtt;
        let sender = ChunkSender::new(state.len() as u32, chunk, pacing).with_estimate(rtt);
        self.sender = Some(sender);
        true
    }

    /// Chunk `index` of the state being sent.
    fn chunk(&self, index: u32) -> StateChunk<'_> {
        let range = self.sender.as_ref().map_or(0..0, |s| s.range(index));
        StateChunk {
            handle: self.handle,
            version: self.version,
            total_len: self.state.len() as u32,
            index,
            data: &self.state[range],
        }
    }
}

/// A name that came in a bottle, which decoding bounded to [`crate::MAX_NAME_LEN`] bytes.
fn wire_name(name: &str) -> Result<Name, InputError> {
    Name::try_from(name).map_err(|_| DecodeError::Limit("name").into())
}

impl Device {
    #[cold]
    #[inline(never)]
    pub(super) fn on_good_morning_ack(
        &mut self,
        now: Instant,
        ack: GoodMorningAck<'_>,
    ) -> Result<(), InputError> {
        let first_sent = match &self.phase {
            Phase::Joining {
                nonce,
                leaving: true,
                ..
            } if *nonce == ack.nonce => {
                self.phase = Phase::Leaving {
                    session: ack.session,
                    next_at: now,
                    tries: 0,
                };
                self.on_timeout(now);
                return Ok(());
            }
            Phase::Joining {
                nonce, first_sent, ..
            } if *nonce == ack.nonce => first_sent.unwrap_or(now),
            Phase::Joined(s) if s.id == ack.session => {
                self.stats.duplicate += 1;
                return Ok(());
            }
            // The session's GOOD_MORNING, sent again on a new link, opened another: the AC
            // no longer knew this one.
            Phase::Joined(s) if s.nonce == ack.nonce => {
                self.lose_session(now, StopReason::SessionLost);
                return Ok(());
            }
            _ => return Err(InputError::OutOfPhase("GOOD_MORNING ack for another join")),
        };
        let chunk_ok = usize::from(ack.chunk_size) >= 1
            && usize::from(ack.chunk_size) + CHUNK_OVERHEAD <= self.cfg.limits.max_bottle;
        if ack.session == SessionId::NONE || ack.hello_ms == 0 || !chunk_ok {
            return Err(InputError::OutOfPhase(
                "GOOD_MORNING ack with unusable parameters",
            ));
        }
        let fence = (ack.fence_ms > 0).then(|| ms_micros(ack.fence_ms));
        // The lease counts from the first GOOD_MORNING of this join, the earliest the AC can
        // have opened the session. When the join took long (a first send lost before the
        // transport was up, retries under loss), little or nothing of it is left: the
        // computations then wait for the first HELLO ack, a lease counted from something
        // the AC answered.
        let waiting_since = fence
            .filter(|&f| first_sent.plus_micros(f) < now.plus_micros(f / 2))
            .map(|_| now);
        let comps = (ack.run.iter().enumerate())
            .map(|(i, name)| Ok(Hosted::new(i as u16, None, wire_name(name)?, Vec::new())))
            .collect::<Result<Vec<Hosted>, InputError>>()?;
        self.last_dead = Some(ms_micros(ack.dead_ms));
        self.phase = Phase::Joined(Box::new(Session {
            id: ack.session,
            mode: ack.mode,
            hello_ms: ack.hello_ms,
            fence_ms: ack.fence_ms,
            dead_ms: ack.dead_ms,
            chunk: ack.chunk_size,
            // The AC opened the session after the first GOOD_MORNING was sent, so its dead
            // timer runs at least until then plus the dead interval.
            lease_until: fence.map_or(Instant::MAX, |f| first_sent.plus_micros(f)),
            waiting_since,
            next_hello_at: now,
            ack_due: Instant::MAX,
            srtt: None,
            seq: 0,
            sent: [(0, Instant::MAX); SENT_RING],
            comps,
            incoming: Vec::new(),
            nonce: ack.nonce,
            outcomes: Vec::new(),
            max_morph: 0,
            sequences: Vec::new(),
        }));
        if waiting_since.is_none() {
            self.start();
        }
        self.on_timeout(now);
        Ok(())
    }

    /// The live session, if `id` names it.
    pub(super) fn joined(&mut self, id: SessionId) -> Result<&mut Session, InputError> {
        match &mut self.phase {
            Phase::Joined(s) if s.id == id => Ok(s),
            Phase::Joined(_) => Err(InputError::UnknownSession),
            _ => Err(InputError::OutOfPhase("not joined")),
        }
    }

    pub(super) fn on_hello_ack(&mut self, now: Instant, a: HelloAck) -> Result<(), InputError> {
        let s = self.joined(a.session)?;
        let (seq, sent) = s.sent[usize::from(a.seq) % SENT_RING];
        if seq != a.seq || sent == Instant::MAX {
            return Err(InputError::OutOfPhase("ack of a HELLO not remembered"));
        }
        // Each HELLO counts once: an ack repeated on the path teaches nothing new.
        s.sent[usize::from(a.seq) % SENT_RING].1 = Instant::MAX;
        let rtt = now.micros_since(sent);
        s.srtt = Some(s.srtt.map_or(rtt, |srtt| smooth(srtt, rtt)));
        if a.seq == s.seq {
            s.ack_due = Instant::MAX;
        }
        if let Some(fence) = s.fence() {
            s.lease_until = s.lease_until.max(sent.plus_micros(fence));
        }
        if s.waiting_since.is_some() && s.lease_until > now {
            s.waiting_since = None;
            self.start();
        }
        Ok(())
    }

    /// The session's computations may run: tells the application which to start.
    #[cold]
    #[inline(never)]
    fn start(&mut self) {
        let Phase::Joined(s) = &self.phase else {
            return;
        };
        let run = s.comps.iter().map(|h| h.name).collect();
        self.outbox.event(DeviceEvent::Joined {
            session: s.id,
            run,
            hello: ms(s.hello_ms),
            dead: ms(s.dead_ms),
            fence: (s.fence_ms > 0).then(|| ms(s.fence_ms)),
            mode: s.mode,
        });
    }

    pub(super) fn send_hello(&mut self, now: Instant) {
        let Phase::Joined(s) = &mut self.phase else {
            return;
        };
        s.seq = s.seq.wrapping_add(1);
        s.sent[usize::from(s.seq) % SENT_RING] = (s.seq, now);
        let hello = s.hello();
        s.next_hello_at = now.plus_micros(hello);
        // An ack later than twice the round trip is taken as lost, but a HELLO goes at
        // most four times an interval.
        let wait = s.srtt.map_or(hello, |rtt| rtt.saturating_add(rtt));
        s.ack_due = now.plus_micros(wait.clamp(hello / 4, hello));
        let (id, seq) = (s.id, s.seq);
        if s.mode == StateMode::InHello {
            // The first chunk due rides on the HELLO, the rest follow as STATE.
            for h in s.comps.iter_mut() {
                let Some(index) = h.sender.as_mut().and_then(|t| t.next_to_send(now)) else {
                    continue;
                };
                let chunk = h.chunk(index);
                let hello = Bottle::Hello(Hello {
                    session: id,
                    seq,
                    state: Some(chunk),
                });
                let seal = self.auth.as_mut().map(|a| a.seal(&hello));
                let max = self.cfg.limits.max_bottle;
                (self.outbox).transmit(&mut self.stats, LinkId(0), &hello, max, seal);
                return self.send_state_chunks(now, true);
            }
        }
        self.send(&Bottle::Hello(Hello {
            session: id,
            seq,
            state: None,
        }));
    }

    /// Sends the state chunks that are due as STATE bottles. In JOINED mode state moves
    /// only at HELLO time (`at_hello`).
    pub(super) fn send_state_chunks(&mut self, now: Instant, at_hello: bool) {
        let Phase::Joined(s) = &mut self.phase else {
            return;
        };
        if s.mode == StateMode::InHello && !at_hello {
            return;
        }
        for h in s.comps.iter_mut() {
            while let Some(index) = h.sender.as_mut().and_then(|t| t.next_to_send(now)) {
                let chunk = h.chunk(index);
                let bottle = Bottle::State(StateBottle {
                    session: s.id,
                    chunk,
                });
                let seal = self.auth.as_mut().map(|a| a.seal(&bottle));
                let max = self.cfg.limits.max_bottle;
                (self.outbox).transmit(&mut self.stats, LinkId(0), &bottle, max, seal);
            }
        }
    }

    pub(super) fn on_state_ack(&mut self, now: Instant, a: StateAck) -> Result<(), InputError> {
        let s = self.joined(a.session)?;
        let Some(h) = s.comps.iter_mut().find(|h| h.handle == a.handle) else {
            return Err(InputError::OutOfPhase(
                "state ack for a computation not running",
            ));
        };
        let stored = match h.sender.as_mut().filter(|_| a.version == h.version) {
            Some(sender) => {
                sender.on_progress(a.progress, now);
                if !sender.is_done() {
                    return Ok(());
                }
                h.rtt = sender.estimate().or(h.rtt);
                h.sender = None;
                Some(h.version)
            }
            // An ack of a version replaced since: when the AC holds all of it, that is
            // the state it would hand over, newer than any reported before.
            None => h
                .superseded
                .iter()
                .find(|&&(v, chunks)| v == a.version && a.progress.next >= chunks)
                .map(|&(v, _)| v),
        };
        let Some(version) = stored.filter(|&v| h.stored.is_none_or(|s| v > s)) else {
            self.stats.duplicate += 1;
            return Ok(());
        };
        h.stored = Some(version);
        h.superseded.retain(|&(v, _)| v > version);
        let event = DeviceEvent::StateStored {
            computation: h.name,
            version,
        };
        self.outbox.event(event);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::smooth;

    #[test]
    fn smoothing_rounds_down_without_overflow() {
        let values = [
            0,
            1,
            7,
            8,
            15,
            999_999,
            u64::MAX / 8,
            u64::MAX - 7,
            u64::MAX,
        ];
        for srtt in values {
            for rtt in values {
                let exact = (u128::from(srtt) * 7 + u128::from(rtt)) / 8;
                assert_eq!(u128::from(smooth(srtt, rtt)), exact, "{srtt} {rtt}");
            }
        }
    }
}
