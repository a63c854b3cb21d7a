//! The device agent (the paper's proxy agent): join, HELLO task, state updates, MORPH
//! receiver, fencing.

mod command;
mod config;
mod event;
mod morph;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

pub use command::DeviceCommand;
pub use config::DeviceConfig;
pub use event::{DeviceEvent, Install, InstallId, InstalledObject, StopReason};

use crate::bottle::{
    Bottle, Challenge, GoodBye, GoodByeAck, GoodMorning, GoodMorningAck, Hello, HelloAck, Mode,
    Reject, RejectReason, State, StateAck, StateChunk,
};
use crate::error::{CommandError, InputError};
use crate::ids::{JoinNonce, SessionId};
use crate::io::{LinkId, Machine, Outbox, Output, Seal};
use crate::psk::{
    challenge_key, issued_at, session_key, Direction, ReplayWindow, Sealed, CHALLENGE_LEN,
    RESYNC_PERIOD,
};
use crate::rng::Rng;
use crate::stats::Stats;
use crate::sui::StateUpdateInterface;
use crate::time::{ms, to_ms, Clock, Instant};
use crate::transfer::{ChunkSender, Pacing};

/// HELLO send times remembered for matching acks.
const SENT_RING: usize = 16;
/// GOOD_BYE sends before the device gives up waiting for the ack.
const GOODBYE_TRIES: u32 = 5;
/// Unacknowledged state versions remembered per computation after a newer one replaced
/// them.
const SUPERSEDED: usize = 8;
/// The shortest retransmission timeout and GOOD_MORNING retry interval.
const MIN_TIMER: Duration = Duration::from_millis(1);

/// The device agent as a Sans-IO state machine.
///
/// Drive it like the [`crate::Controller`]: `handle_receive` and `handle_timeout`, then drain `poll_output` until
/// [`Output::Timeout`]. Start it with [`Device::new`]; it joins by itself. The application
/// runs the computations the events name, reports their state with
/// [`Device::set_state`], answers installs with [`Device::answer_install`] and stops a
/// computation as soon as a [`DeviceEvent::Stop`] says so.
pub struct Device {
    cfg: DeviceConfig,
    pacing: Pacing,
    clock: Clock,
    rng: Rng,
    outbox: Outbox<DeviceEvent>,
    stats: Stats,
    phase: Phase,
    /// Pre-shared-key mode: the keys of the join in progress or the session.
    auth: Option<Auth>,
    /// Pre-shared-key mode: the key the AC seals its CHALLENGEs with.
    challenge_key: Option<[u8; 32]>,
    /// The dead interval the AC last granted: join retries back off no further.
    last_dead: Option<Duration>,
}

/// The session keys of pre-shared-key mode, from the AC's challenge.
struct Auth {
    challenge: [u8; CHALLENGE_LEN],
    key: [u8; 32],
    /// The counter of the next bottle sent.
    sent: u32,
    /// Counters of the AC's bottles seen.
    window: ReplayWindow,
}

/// Queues `bottle` for the AC; in pre-shared-key mode, sealed once the AC's challenge is
/// known (a GOOD_MORNING carries the challenge too).
fn transmit(
    outbox: &mut Outbox<DeviceEvent>,
    stats: &mut Stats,
    cfg: &DeviceConfig,
    auth: &mut Option<Auth>,
    bottle: &Bottle<'_>,
) {
    let seal = match auth.as_mut().filter(|_| cfg.psk.is_some()) {
        Some(a) => {
            let extra: &[u8] = match bottle {
                Bottle::GoodMorning(_) => &a.challenge,
                _ => &[],
            };
            match Seal::next(&a.key, Direction::ToAc, &mut a.sent, extra) {
                Some(seal) => Some(seal),
                None => {
                    stats.dropped_transmits += 1;
                    return;
                }
            }
        }
        None => None,
    };
    if !outbox.send(LinkId(0), bottle, cfg.limits.max_bottle, seal) {
        stats.dropped_transmits += 1;
    }
}

/// The GOOD_MORNING of a join with `nonce`.
fn good_morning(cfg: &DeviceConfig, nonce: JoinNonce) -> Bottle<'_> {
    Bottle::GoodMorning(GoodMorning {
        device: &cfg.name,
        nonce,
        mode: cfg.mode,
        hello_ms: to_ms(cfg.hello),
        dead_ms: to_ms(cfg.dead),
        max_bottle: cfg.limits.max_bottle.min(usize::from(u16::MAX)) as u16,
    })
}

enum Phase {
    Joining {
        nonce: JoinNonce,
        first_sent: Option<Instant>,
        next_at: Instant,
        backoff: Duration,
        /// The application left while a GOOD_MORNING was outstanding: the AC may have
        /// opened a session, so it gets a GOOD_BYE as soon as the ack names it.
        leaving: bool,
    },
    Joined(Box<Session>),
    Leaving {
        session: SessionId,
        next_at: Instant,
        tries: u32,
    },
    Left,
}

struct Session {
    id: SessionId,
    mode: Mode,
    hello: Duration,
    /// `None` when fencing is off.
    fence: Option<Duration>,
    dead: Duration,
    chunk: u16,
    /// Fence lease: the computations may run until then.
    lease_until: Instant,
    /// Set while the computations wait for the session's first lease: since when. They
    /// start (event `Joined`) once a HELLO ack gives one.
    waiting_since: Option<Instant>,
    next_hello_at: Instant,
    /// When the latest HELLO's ack is overdue: a HELLO goes early then, so that one lost
    /// HELLO or ack costs a fraction of an interval of lease, not a whole one.
    ack_due: Instant,
    /// Smoothed round trip of HELLO and ack.
    srtt: Option<Duration>,
    seq: u16,
    sent: [(u16, Instant); SENT_RING],
    comps: Vec<Hosted>,
    /// MORPHs being received or waiting for the application.
    incoming: Vec<morph::Incoming>,
    nonce: JoinNonce,
    /// Recent MORPH outcomes, answered again on a duplicate.
    outcomes: Vec<morph::Outcome>,
    /// The highest MORPH id of this session that passed every check: older headers are
    /// stale. A new session (a new AC, or one that restarted) starts again from 0.
    max_morph: u32,
    /// Last manifest sequence number accepted in this session, per computation. Manifests
    /// of earlier sessions name another join nonce and are refused anyway.
    sequences: Vec<(String, u64)>,
}

struct Hosted {
    handle: u16,
    /// The MORPH that brought it; `None` for one the GOOD_MORNING ack named.
    morph: Option<u32>,
    name: String,
    state: Vec<u8>,
    version: u32,
    /// Sends `state` as `version` until the AC holds all of it.
    sender: Option<ChunkSender>,
    /// Versions replaced by a newer one before the AC acknowledged all of them, with their
    /// chunk counts, oldest first: an ack of one still tells which state the AC holds.
    superseded: Vec<(u32, u32)>,
    /// The newest version the AC acknowledged holding, reported with `StateStored`.
    stored: Option<u32>,
}

impl Hosted {
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

impl Device {
    /// A device agent that starts joining at `now`.
    pub fn new(cfg: DeviceConfig, now: Instant) -> Device {
        let mut rng = Rng::new(cfg.seed);
        let nonce = JoinNonce(rng.next_u64().to_le_bytes());
        Device {
            pacing: Pacing {
                window: cfg.window.max(1),
                rto: cfg.rto.max(MIN_TIMER),
                rto_max: cfg.rto_max.max(cfg.rto).max(MIN_TIMER),
            },
            clock: Clock::new(now),
            outbox: Outbox::new(cfg.outbox_limit),
            stats: Stats::default(),
            phase: Phase::Joining {
                nonce,
                first_sent: None,
                next_at: now,
                backoff: cfg.join_retry.max(MIN_TIMER),
                leaving: false,
            },
            auth: None,
            challenge_key: cfg.psk.as_ref().map(|psk| challenge_key(psk, &cfg.name)),
            last_dead: None,
            rng,
            cfg,
        }
    }

    /// Feeds the bytes of one bottle that arrived from the AC at `now` (one datagram, or
    /// one frame of a stream). Due timers run first, so a device that was frozen past its
    /// fence lease stops its computations before it acts on anything that arrived
    /// meanwhile. A refused bottle returns the reason; it was counted in
    /// [`Device::stats`] and changed nothing, so the caller logs it and carries on.
    pub fn handle_receive(&mut self, now: Instant, bytes: &[u8]) -> Result<(), InputError> {
        let now = self.clock.advance(now);
        if self.next_deadline() <= now {
            self.on_timeout(now);
        }
        self.stats.received += 1;
        self.receive(now, bytes)
            .inspect_err(|e| self.stats.count(e))
    }

    /// Time passed: runs the timers due at `now` (see [`Machine::handle_timeout`]). A new
    /// device sends its first GOOD_MORNING on its first call.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock.advance(now);
        self.on_timeout(now);
    }

    /// Opens and dispatches one bottle. In pre-shared-key mode nothing travels plain: a
    /// CHALLENGE must be sealed with the challenge key, every other bottle with the session
    /// key, carry the right tag and a counter not seen before.
    fn receive(&mut self, now: Instant, bytes: &[u8]) -> Result<(), InputError> {
        let limits = self.cfg.limits;
        if self.cfg.psk.is_none() {
            return self.on_bottle(now, Bottle::decode(bytes, &limits)?);
        }
        let sealed = Sealed::split(bytes).ok_or(InputError::Unauthenticated)?;
        if let Ok(Bottle::Challenge(c)) = Bottle::decode(sealed.covered, &limits) {
            let genuine = (self.challenge_key.as_ref())
                .is_some_and(|key| sealed.verify(key, Direction::ToDevice));
            if !genuine {
                return Err(InputError::Unauthenticated);
            }
            return self.on_challenge(now, c);
        }
        let auth = self.auth.as_mut().ok_or(InputError::Unauthenticated)?;
        if !sealed.verify(&auth.key, Direction::ToDevice) {
            return Err(InputError::Unauthenticated);
        }
        let bottle = Bottle::decode(sealed.covered, &limits)?;
        if !auth.window.accept(sealed.counter) {
            return Err(InputError::Replayed);
        }
        self.on_bottle(now, bottle)
    }

    /// Pre-shared-key mode: derives the session key from the AC's challenge and answers
    /// with a sealed GOOD_MORNING at once.
    fn on_challenge(&mut self, now: Instant, c: Challenge) -> Result<(), InputError> {
        let (
            Some(psk),
            Phase::Joining {
                nonce,
                next_at,
                first_sent,
                ..
            },
        ) = (&self.cfg.psk, &mut self.phase)
        else {
            return Err(InputError::OutOfPhase("challenge while not joining"));
        };
        if c.nonce != *nonce {
            return Err(InputError::OutOfPhase("challenge for another join"));
        }
        // Challenges are ordered by their issue time, their first eight bytes: the device
        // answers the latest, as the AC keys the session by the latest it was answered.
        if self
            .auth
            .as_ref()
            .is_some_and(|a| issued_at(&a.challenge) >= issued_at(&c.challenge))
        {
            return Err(InputError::OutOfPhase("not the latest challenge"));
        }
        // No session can predate the first sealed GOOD_MORNING of this join: the fence
        // lease counts from it. A later challenge (the AC answered a repeated plain
        // GOOD_MORNING) does not move that: the AC may have opened the session on the
        // first, and a repeated GOOD_MORNING does not reset its dead timer.
        if self.auth.as_ref().is_none_or(|a| a.sent == 0) {
            *first_sent = None;
        }
        self.auth = Some(Auth {
            challenge: c.challenge,
            key: session_key(psk, &c.challenge, *nonce),
            sent: 0,
            window: ReplayWindow::default(),
        });
        *next_at = now;
        self.on_timeout(now);
        Ok(())
    }

    /// The next output. Drain until [`Output::Timeout`], which always ends a drain.
    pub fn poll_output(&mut self) -> Output<'_, DeviceEvent> {
        let next = self.next_deadline();
        self.outbox.poll(next)
    }

    /// Counters of received and refused bottles.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The device's name, as configured.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// The current session, once joined.
    pub fn session(&self) -> Option<SessionId> {
        match &self.phase {
            Phase::Joined(s) => Some(s.id),
            _ => None,
        }
    }

    /// The computations running here now, by name.
    pub fn running(&self) -> impl Iterator<Item = &str> {
        let comps = match &self.phase {
            Phase::Joined(s) if s.waiting_since.is_none() => &s.comps[..],
            _ => &[],
        };
        comps.iter().map(|h| h.name.as_str())
    }

    /// Until when this device's computations may run: the end of its fence lease, in the
    /// time of the `now` it is given. `None` when none may run (no session, or a session
    /// whose computations wait for their first lease); [`Instant::MAX`] when the AC does not
    /// fence.
    ///
    /// Check it before every step of a computation, with the time of that step, not after:
    /// a step taken at or after this instant may run beside the copy the AC moved
    /// elsewhere. A device that stalled (frozen, swapped out, starved) learns of it only
    /// when it runs again, and its computations must not act before it has judged its
    /// lease. Feed the due timeout first ([`Device::handle_receive`] runs due timers before
    /// anything else), or, when the computations step on another thread, read the lease
    /// from a [`crate::SharedLease`] the driver publishes after every input.
    pub fn lease_until(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Joined(s) if s.waiting_since.is_none() => Some(s.lease_until),
            _ => None,
        }
    }

    /// Reports a computation's current state. A state equal to the last one reported is
    /// not sent again; a new one becomes the next version and is sent until the AC
    /// acknowledges it (JOINED mode: with the next HELLO; SPLIT mode: at once).
    pub fn set_state(
        &mut self,
        now: Instant,
        computation: &str,
        state: &[u8],
    ) -> Result<(), CommandError> {
        let now = self.clock.advance(now);
        if state.len() > self.cfg.limits.max_state as usize {
            return Err(CommandError::StateTooLarge);
        }
        let pacing = self.pacing;
        let s = match &mut self.phase {
            Phase::Joined(s) if s.waiting_since.is_none() => s,
            _ => return Err(CommandError::NotJoined),
        };
        let chunk = s.chunk;
        let h = s
            .comps
            .iter_mut()
            .find(|h| h.name == computation)
            .ok_or(CommandError::UnknownComputation)?;
        if h.state == state {
            return Ok(());
        }
        if let Some(sender) = h.sender.as_ref() {
            if h.superseded.len() == SUPERSEDED {
                h.superseded.remove(0);
            }
            h.superseded.push((h.version, sender.chunks()));
        }
        h.state.clear();
        h.state.extend_from_slice(state);
        h.version = h.version.wrapping_add(1);
        h.sender = Some(ChunkSender::new(state.len() as u32, chunk, pacing));
        if s.mode == Mode::Split {
            self.send_state_chunks(now, false);
        }
        Ok(())
    }

    /// Captures a computation's state through its State Update Interface and reports it
    /// with [`Device::set_state`].
    pub fn capture<S: StateUpdateInterface>(
        &mut self,
        now: Instant,
        computation: &str,
        sui: &S,
        scratch: &mut Vec<u8>,
    ) -> Result<(), CommandError> {
        scratch.clear();
        sui.capture(scratch);
        self.set_state(now, computation, scratch)
    }

    /// Tells the device that its transport reaches the AC over a new connection or from a
    /// new address. In a session it sends its GOOD_MORNING again, with the session's nonce:
    /// the AC answers it as a retransmission and moves the session to the new link, where
    /// it would otherwise refuse the session's bottles (`docs/PROTOCOL.md` §7.8). Otherwise
    /// it does nothing. Drain afterwards.
    pub fn relink(&mut self, now: Instant) {
        self.clock.advance(now);
        let Phase::Joined(s) = &self.phase else {
            return;
        };
        let nonce = s.nonce;
        self.send_good_morning(nonce);
    }

    /// Sends the GOOD_MORNING of the join with `nonce`.
    fn send_good_morning(&mut self, nonce: JoinNonce) {
        let gm = good_morning(&self.cfg, nonce);
        transmit(
            &mut self.outbox,
            &mut self.stats,
            &self.cfg,
            &mut self.auth,
            &gm,
        );
    }

    /// Leaves gracefully: every computation stops (events) and GOOD_BYE is sent until the
    /// AC acknowledges it. The AC will not recover this device's computations.
    pub fn leave(&mut self, now: Instant) {
        let now = self.clock.advance(now);
        match core::mem::replace(&mut self.phase, Phase::Left) {
            Phase::Joined(s) => {
                self.stop_all(&s, StopReason::Left);
                self.phase = Phase::Leaving {
                    session: s.id,
                    next_at: now,
                    tries: 0,
                };
                self.on_timeout(now);
            }
            Phase::Leaving {
                session,
                next_at,
                tries,
            } => {
                self.phase = Phase::Leaving {
                    session,
                    next_at,
                    tries,
                };
            }
            Phase::Joining {
                nonce,
                first_sent: Some(first_sent),
                next_at,
                backoff,
                ..
            } => {
                self.phase = Phase::Joining {
                    nonce,
                    first_sent: Some(first_sent),
                    next_at,
                    backoff,
                    leaving: true,
                };
            }
            Phase::Joining { .. } | Phase::Left => self.outbox.event(DeviceEvent::Left),
        }
    }

    fn send(&mut self, bottle: &Bottle<'_>) {
        transmit(
            &mut self.outbox,
            &mut self.stats,
            &self.cfg,
            &mut self.auth,
            bottle,
        );
    }

    fn next_deadline(&self) -> Instant {
        match &self.phase {
            Phase::Joining { next_at, .. } | Phase::Leaving { next_at, .. } => *next_at,
            Phase::Left => Instant::MAX,
            Phase::Joined(s) => {
                let end = s
                    .waiting_since
                    .map_or(s.lease_until, |since| since + s.dead);
                let mut at = s.next_hello_at.min(s.ack_due).min(end);
                if s.mode == Mode::Split {
                    for h in &s.comps {
                        if let Some(d) = h.sender.as_ref().and_then(ChunkSender::deadline) {
                            at = at.min(d);
                        }
                    }
                }
                for d in s.incoming.iter().filter_map(morph::Incoming::deadline) {
                    at = at.min(d);
                }
                at
            }
        }
    }

    fn on_timeout(&mut self, now: Instant) {
        match &mut self.phase {
            Phase::Joining {
                nonce,
                first_sent,
                next_at,
                backoff,
                leaving,
            } if *next_at <= now => {
                // Retries back off to the dead interval at most: a device kept out for longer
                // than its AC takes to declare a death is kept out needlessly.
                let dead = self.last_dead.unwrap_or(self.cfg.dead);
                let cap = dead
                    .min(self.cfg.join_retry_max)
                    .max(self.cfg.join_retry.max(MIN_TIMER));
                if *leaving && *backoff >= cap {
                    // No answer for a long while: whatever session there was will die.
                    self.phase = Phase::Left;
                    self.outbox.event(DeviceEvent::Left);
                    return;
                }
                if !*leaving && self.auth.as_ref().is_some_and(|a| a.sent > 0) {
                    // The answer to a challenge went unanswered: start over with a fresh
                    // nonce, so that no challenge kept from this attempt (the AC's, from
                    // before it restarted, or one replayed) holds up the next.
                    self.auth = None;
                    *nonce = JoinNonce(self.rng.next_u64().to_le_bytes());
                    *first_sent = None;
                }
                first_sent.get_or_insert(now);
                let jitter = self.rng.below(u64::from(u32::MAX)) as f64 / f64::from(u32::MAX);
                let wait = backoff.mul_f64(0.5 + jitter);
                *next_at = now + wait;
                *backoff = (*backoff * 2).min(cap);
                let nonce = *nonce;
                self.send_good_morning(nonce);
            }
            Phase::Leaving {
                session,
                next_at,
                tries,
            } if *next_at <= now => {
                if *tries >= GOODBYE_TRIES {
                    self.phase = Phase::Left;
                    self.outbox.event(DeviceEvent::Left);
                    return;
                }
                *tries += 1;
                *next_at = now + self.pacing.rto * (1 << (*tries).min(4));
                let bye = Bottle::GoodBye(GoodBye { session: *session });
                self.send(&bye);
            }
            Phase::Joined(s) => {
                match s.waiting_since {
                    // No lease came for a whole dead interval: the AC has given up on
                    // this session, or will; nothing ran in it.
                    Some(since) if since + s.dead <= now => {
                        return self.lose_session(now, StopReason::Fenced)
                    }
                    None if s.lease_until <= now => {
                        return self.lose_session(now, StopReason::Fenced)
                    }
                    _ => {}
                }
                if s.next_hello_at <= now || s.ack_due <= now {
                    self.send_hello(now);
                }
                self.send_state_chunks(now, false);
                self.morph_timeout(now);
            }
            _ => {}
        }
    }

    fn send_hello(&mut self, now: Instant) {
        let Phase::Joined(s) = &mut self.phase else {
            return;
        };
        s.seq = s.seq.wrapping_add(1);
        s.sent[usize::from(s.seq) % SENT_RING] = (s.seq, now);
        s.next_hello_at = now + s.hello;
        // An ack later than twice the round trip is taken as lost, but a HELLO goes at
        // most four times an interval.
        let wait = s.srtt.map_or(s.hello, |rtt| rtt * 2);
        s.ack_due = now + wait.clamp(s.hello / 4, s.hello);
        let (id, seq) = (s.id, s.seq);
        if s.mode == Mode::Joined {
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
                transmit(
                    &mut self.outbox,
                    &mut self.stats,
                    &self.cfg,
                    &mut self.auth,
                    &hello,
                );
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
    fn send_state_chunks(&mut self, now: Instant, at_hello: bool) {
        let Phase::Joined(s) = &mut self.phase else {
            return;
        };
        if s.mode == Mode::Joined && !at_hello {
            return;
        }
        for h in s.comps.iter_mut() {
            while let Some(index) = h.sender.as_mut().and_then(|t| t.next_to_send(now)) {
                let chunk = h.chunk(index);
                let bottle = Bottle::State(State {
                    session: s.id,
                    chunk,
                });
                transmit(
                    &mut self.outbox,
                    &mut self.stats,
                    &self.cfg,
                    &mut self.auth,
                    &bottle,
                );
            }
        }
    }

    fn on_bottle(&mut self, now: Instant, bottle: Bottle<'_>) -> Result<(), InputError> {
        match bottle {
            Bottle::GoodMorningAck(ack) => self.on_good_morning_ack(now, ack),
            Bottle::Reject(r) => self.on_reject(now, r),
            Bottle::HelloAck(a) => self.on_hello_ack(now, a),
            Bottle::StateAck(a) => self.on_state_ack(a),
            Bottle::Morph(m) => self.on_morph(m),
            Bottle::ObjectChunk(c) => self.on_object_chunk(now, c),
            Bottle::MorphFail(f) => self.on_cancel(f),
            Bottle::GoodBye(g) => {
                self.joined(g.session)?;
                if let Phase::Joined(s) = core::mem::replace(&mut self.phase, Phase::Left) {
                    self.stop_all(&s, StopReason::Dismissed);
                }
                self.send(&Bottle::GoodByeAck(GoodByeAck { session: g.session }));
                self.outbox.event(DeviceEvent::Left);
                Ok(())
            }
            Bottle::GoodByeAck(g) => match self.phase {
                Phase::Leaving { session, .. } if session == g.session => {
                    self.phase = Phase::Left;
                    self.outbox.event(DeviceEvent::Left);
                    Ok(())
                }
                _ => Err(InputError::OutOfPhase("GOOD_BYE ack while not leaving")),
            },
            Bottle::Challenge(_) => Err(InputError::OutOfPhase("plain challenge")),
            Bottle::GoodMorning(_)
            | Bottle::Hello(_)
            | Bottle::State(_)
            | Bottle::ChunkAck(_)
            | Bottle::MorphAck(_) => Err(InputError::OutOfPhase("bottle for the AC")),
        }
    }

    /// The live session, if `id` names it.
    fn joined(&mut self, id: SessionId) -> Result<&mut Session, InputError> {
        match &mut self.phase {
            Phase::Joined(s) if s.id == id => Ok(s),
            Phase::Joined(_) => Err(InputError::UnknownSession),
            _ => Err(InputError::OutOfPhase("not joined")),
        }
    }

    fn on_hello_ack(&mut self, now: Instant, a: HelloAck) -> Result<(), InputError> {
        let s = self.joined(a.session)?;
        let (seq, sent) = s.sent[usize::from(a.seq) % SENT_RING];
        if seq != a.seq || sent == Instant::MAX {
            return Err(InputError::OutOfPhase("ack of a HELLO not remembered"));
        }
        // Each HELLO counts once: an ack repeated on the path teaches nothing new.
        s.sent[usize::from(a.seq) % SENT_RING].1 = Instant::MAX;
        let rtt = now.saturating_since(sent);
        s.srtt = Some(s.srtt.map_or(rtt, |srtt| (srtt * 7 + rtt) / 8));
        if a.seq == s.seq {
            s.ack_due = Instant::MAX;
        }
        if let Some(fence) = s.fence {
            s.lease_until = s.lease_until.max(sent + fence);
        }
        if s.waiting_since.is_some() && s.lease_until > now {
            s.waiting_since = None;
            self.start();
        }
        Ok(())
    }

    /// The session's computations may run: tells the application which to start.
    fn start(&mut self) {
        let Phase::Joined(s) = &self.phase else {
            return;
        };
        let run = s.comps.iter().map(|h| h.name.clone()).collect();
        self.outbox.event(DeviceEvent::Joined {
            session: s.id,
            run,
            hello: s.hello,
            dead: s.dead,
            fence: s.fence,
            mode: s.mode,
        });
    }

    fn on_good_morning_ack(
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
            _ => return Err(InputError::OutOfPhase("GOOD_MORNING ack for another join")),
        };
        let chunk_ok = usize::from(ack.chunk_size) >= 1
            && usize::from(ack.chunk_size) + crate::controller::CHUNK_OVERHEAD
                <= self.cfg.limits.max_bottle;
        if ack.session == SessionId::NONE || ack.hello_ms == 0 || !chunk_ok {
            return Err(InputError::OutOfPhase(
                "GOOD_MORNING ack with unusable parameters",
            ));
        }
        let fence = (ack.fence_ms > 0).then(|| ms(ack.fence_ms));
        // The lease counts from the first GOOD_MORNING of this join, the earliest the AC can
        // have opened the session. When the join took long (a first send lost before the
        // transport was up, retries under loss), little or nothing of it is left: the
        // computations then wait for the first HELLO ack, a lease counted from something
        // the AC answered.
        let waiting_since = fence
            .filter(|f| first_sent + *f < now + *f / 2)
            .map(|_| now);
        self.last_dead = Some(ms(ack.dead_ms));
        let comps: Vec<Hosted> = ack
            .run
            .iter()
            .enumerate()
            .map(|(i, name)| Hosted {
                handle: i as u16,
                morph: None,
                name: (*name).into(),
                state: Vec::new(),
                version: 0,
                sender: None,
                superseded: Vec::new(),
                stored: None,
            })
            .collect();
        self.phase = Phase::Joined(Box::new(Session {
            id: ack.session,
            mode: ack.mode,
            hello: ms(ack.hello_ms),
            fence,
            dead: ms(ack.dead_ms),
            chunk: ack.chunk_size,
            // The AC opened the session after the first GOOD_MORNING was sent, so its dead
            // timer runs at least until then plus the dead interval.
            lease_until: fence.map_or(Instant::MAX, |f| first_sent + f),
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

    fn on_reject(&mut self, now: Instant, r: Reject) -> Result<(), InputError> {
        let resync = r.reason == RejectReason::Resync && self.auth.is_some();
        match &mut self.phase {
            Phase::Joining {
                nonce,
                leaving: true,
                ..
            } if *nonce == r.nonce && r.session == SessionId::NONE => {
                self.phase = Phase::Left;
                self.outbox.event(DeviceEvent::Left);
                Ok(())
            }
            Phase::Joining { nonce, next_at, .. }
                if *nonce == r.nonce && r.session == SessionId::NONE =>
            {
                *next_at = now + self.cfg.join_retry_max;
                self.outbox
                    .event(DeviceEvent::Rejected { reason: r.reason });
                Ok(())
            }
            // Only a sealed REJECT, one of the AC that holds the session key, resyncs.
            Phase::Joined(s) if s.id == r.session && resync => {
                s.next_hello_at = now;
                self.resync(now)
            }
            Phase::Leaving {
                session, next_at, ..
            } if *session == r.session && resync => {
                *next_at = now;
                self.resync(now)
            }
            Phase::Joined(s) if s.id == r.session => {
                let why = match r.reason {
                    RejectReason::Replaced => StopReason::Replaced,
                    RejectReason::UnknownSession => StopReason::SessionLost,
                    _ => return Err(InputError::OutOfPhase("reject for a joined session")),
                };
                self.lose_session(now, why);
                Ok(())
            }
            _ => Err(InputError::OutOfPhase("reject for another session")),
        }
    }

    /// Pre-shared-key mode, REJECT `Resync` (sealed, so from the AC): the AC restarted and
    /// refuses counters it may have accepted before; jump ahead and resend what is due at
    /// once.
    fn resync(&mut self, now: Instant) -> Result<(), InputError> {
        if let Some(auth) = self.auth.as_mut() {
            auth.sent = auth.sent.saturating_add(RESYNC_PERIOD);
        }
        self.on_timeout(now);
        Ok(())
    }

    fn on_state_ack(&mut self, a: StateAck) -> Result<(), InputError> {
        let s = self.joined(a.session)?;
        let Some(h) = s.comps.iter_mut().find(|h| h.handle == a.handle) else {
            return Err(InputError::OutOfPhase(
                "state ack for a computation not running",
            ));
        };
        let stored = match h.sender.as_mut().filter(|_| a.version == h.version) {
            Some(sender) => {
                sender.on_progress(a.progress);
                if !sender.is_done() {
                    return Ok(());
                }
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
            computation: h.name.clone(),
            version,
        };
        self.outbox.event(event);
        Ok(())
    }

    /// Stops everything and joins again with a new nonce.
    fn lose_session(&mut self, now: Instant, why: StopReason) {
        let joining = Phase::Joining {
            nonce: JoinNonce(self.rng.next_u64().to_le_bytes()),
            first_sent: None,
            next_at: now,
            backoff: self.cfg.join_retry.max(MIN_TIMER),
            leaving: false,
        };
        self.auth = None;
        if let Phase::Joined(s) = core::mem::replace(&mut self.phase, joining) {
            self.stop_all(&s, why);
        }
        self.on_timeout(now);
    }

    fn stop_all(&mut self, s: &Session, why: StopReason) {
        if s.waiting_since.is_some() {
            return;
        }
        for h in &s.comps {
            self.outbox.event(DeviceEvent::Stop {
                computation: h.name.clone(),
                reason: why,
            });
        }
    }
}

impl Machine for Device {
    type Event = DeviceEvent;

    fn handle_timeout(&mut self, now: Instant) {
        Device::handle_timeout(self, now);
    }

    fn poll_output(&mut self) -> Output<'_, DeviceEvent> {
        Device::poll_output(self)
    }

    fn stats(&self) -> &Stats {
        Device::stats(self)
    }
}
