//! The device agent (the paper's proxy agent): join, HELLO task, state updates, MORPH
//! receiver, fencing.

mod auth;
mod command;
mod config;
mod event;
mod morph;
mod session;

use alloc::boxed::Box;
use alloc::vec::Vec;

pub use command::DeviceCommand;
pub use config::DeviceConfig;
pub use event::{DeviceEvent, Install, InstallId, InstalledObject, StopReason};

use crate::error::{CommandError, InputError};
use crate::io::{LinkId, Machine, Outbox, Output};
#[cfg(feature = "psk")]
use crate::psk::challenge_key;
use crate::rng::Rng;
use crate::stats::Stats;
use crate::sui::StateUpdateInterface;
use crate::time::{micros, to_ms, Clock, Instant};
use crate::transfer::{ChunkSender, MicroPacing};
use crate::wire::bottle::{
    Bottle, GoodBye, GoodByeAck, GoodMorning, Reject, RejectReason, StateMode,
};
use crate::wire::ids::{JoinNonce, SessionId};
use auth::Auth;
use session::Session;

/// GOOD_BYE sends before the device gives up waiting for the ack.
const GOODBYE_TRIES: u32 = 5;

/// The shortest retransmission timeout and GOOD_MORNING retry interval, µs.
const MIN_TIMER: u64 = 1_000;

/// The device agent as a Sans-IO state machine.
///
/// Drive it like the [`crate::Controller`]: `handle_receive` and `handle_timeout`, then drain `poll_output` until
/// [`Output::Timeout`]. Start it with [`Device::new`]; it joins by itself. The application
/// runs the computations the events name, reports their state with
/// [`Device::set_state`], answers installs with [`Device::answer_install`] and stops a
/// computation as soon as a [`DeviceEvent::Stop`] says so.
///
#[cfg_attr(
    not(feature = "controller"),
    doc = "[`crate::Controller`]: crate#cargo-features"
)]
pub struct Device {
    cfg: DeviceConfig,
    timers: Timers,
    pacing: MicroPacing,
    clock: Clock,
    rng: Rng,
    outbox: Outbox<DeviceEvent>,
    stats: Stats,
    phase: Phase,
    /// Pre-shared-key mode: the keys of the join in progress or the session.
    auth: Option<Auth>,
    /// Pre-shared-key mode: the key the AC seals its CHALLENGEs with.
    #[cfg(feature = "psk")]
    challenge_key: Option<[u8; 32]>,
    /// The dead interval the AC last granted, µs: join retries back off no further.
    last_dead: Option<u64>,
    /// Since when the AC has not answered, and GOOD_MORNINGs sent since.
    silence: Silence,
}

/// How long the AC has gone without answering: since the last bottle of it the device
/// accepted, or its last [`Device::relink`].
struct Silence {
    since: Instant,
    good_mornings: u8,
    /// Relinked since the AC last answered: the device already left one that did not.
    moved: bool,
    /// Relinked in a session the AC binds to its link (one not authenticated): the device
    /// sends nothing but its GOOD_MORNING until the AC answers.
    hold: bool,
}

/// The configuration's intervals in whole microseconds, the unit the device computes in.
struct Timers {
    /// First GOOD_MORNING retry interval, [`MIN_TIMER`] at least.
    join_retry: u64,
    join_retry_max: u64,
    /// The proposed dead interval.
    dead: u64,
    install_timeout: u64,
}

impl Timers {
    fn new(cfg: &DeviceConfig) -> Timers {
        Timers {
            join_retry: micros(cfg.join_retry).max(MIN_TIMER),
            join_retry_max: micros(cfg.join_retry_max),
            dead: micros(cfg.dead),
            install_timeout: micros(cfg.install_timeout),
        }
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
        /// The retry interval, µs.
        backoff: u64,
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

impl Device {
    /// A device agent that starts joining at `now`.
    pub fn new(cfg: DeviceConfig, now: Instant) -> Device {
        let mut rng = Rng::new(cfg.seed);
        let nonce = JoinNonce(rng.next_u64().to_le_bytes());
        let timers = Timers::new(&cfg);
        let rto = micros(cfg.rto).max(MIN_TIMER);
        Device {
            pacing: MicroPacing {
                window: cfg.window.max(1),
                rto,
                rto_max: micros(cfg.rto_max).max(rto),
            },
            clock: Clock::new(now),
            outbox: Outbox::new(cfg.outbox_limit),
            stats: Stats::default(),
            phase: Phase::Joining {
                nonce,
                first_sent: None,
                next_at: now,
                backoff: timers.join_retry,
                leaving: false,
            },
            timers,
            auth: None,
            #[cfg(feature = "psk")]
            challenge_key: cfg.psk.as_ref().map(|psk| challenge_key(psk, &cfg.name)),
            last_dead: None,
            silence: Silence {
                since: now,
                good_mornings: 0,
                moved: false,
                hold: false,
            },
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
        let received = self.receive(now, bytes);
        match &received {
            Ok(()) => {
                if let (true, Phase::Joined(s)) = (self.silence.hold, &mut self.phase) {
                    // The AC answers on the new link: a HELLO at once renews the lease.
                    s.next_hello_at = now;
                }
                self.silence_from(now, false)
            }
            Err(e) => self.stats.count(e),
        }
        received
    }

    /// The AC's silence counts from `now`: it answered, or the device `moved` to a new way
    /// to it.
    fn silence_from(&mut self, now: Instant, moved: bool) {
        let unauthenticated = self.auth.is_none() && matches!(self.phase, Phase::Joined(_));
        self.silence = Silence {
            since: now,
            good_mornings: 0,
            moved,
            hold: moved && unauthenticated,
        };
    }

    /// Whether the AC has not answered for so long that the device should try another way
    /// to it: the next of its area's ACs, or a new connection. In a session, no bottle of
    /// the AC accepted for the longer of two HELLO intervals and a quarter of the fence
    /// lease (of the dead interval when the AC does not fence), so that a move made in
    /// error, to an AC that does not answer either, and the move back cost at most half the
    /// lease when it spans eight HELLO intervals or more; two HELLO intervals once the
    /// device moved since the AC last answered, so that a device that left a silent AC goes
    /// round the others quickly. While joining, two GOOD_MORNINGs went unanswered. Counted from the
    /// last bottle accepted from the AC or the last [`Device::relink`]; check it after every
    /// input.
    pub fn ac_silent(&self, now: Instant) -> bool {
        let silence = &self.silence;
        match &self.phase {
            Phase::Joining { .. } => silence.good_mornings >= 2,
            Phase::Joined(s) => {
                let lease = s.fence().unwrap_or_else(|| s.dead());
                let mut quiet = 2 * s.hello();
                if !silence.moved {
                    quiet = quiet.max(lease / 4);
                }
                now.micros_since(silence.since) >= quiet
            }
            Phase::Leaving { .. } | Phase::Left => false,
        }
    }

    /// Time passed: runs the timers due at `now` (see [`Machine::handle_timeout`]). A new
    /// device sends its first GOOD_MORNING on its first call.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock.advance(now);
        self.on_timeout(now);
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
    ///
    #[cfg_attr(
        not(feature = "std"),
        doc = "[`crate::SharedLease`]: crate#cargo-features"
    )]
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
        if h.update(state, chunk, pacing) && s.mode == StateMode::Separate && !self.silence.hold {
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
    /// new address, or another AC of its area. In a session it sends its GOOD_MORNING
    /// again, with the session's nonce: the AC answers it as a retransmission and moves the
    /// session to the new link, where it would otherwise refuse the session's bottles
    /// (`docs/PROTOCOL.md` §7.8). Until the AC answers, the device sends that GOOD_MORNING
    /// once a HELLO interval and nothing else but a GOOD_BYE; in a keyed session, whose
    /// sealed HELLOs move it by themselves, a HELLO follows at once. Otherwise it does
    /// nothing.
    /// Either way the AC's silence counts again from `now` ([`Device::ac_silent`]). Drain
    /// afterwards.
    pub fn relink(&mut self, now: Instant) {
        let now = self.clock.advance(now);
        self.silence_from(now, true);
        let hold = self.silence.hold;
        let Phase::Joined(s) = &mut self.phase else {
            return;
        };
        if !hold {
            // A sealed HELLO moves a keyed session to the link it arrives on.
            s.next_hello_at = now;
        }
        let nonce = s.nonce;
        self.send_good_morning(nonce);
    }

    /// Sends the GOOD_MORNING of the join with `nonce`.
    fn send_good_morning(&mut self, nonce: JoinNonce) {
        self.silence.good_mornings = self.silence.good_mornings.saturating_add(1);
        let gm = good_morning(&self.cfg, nonce);
        let seal = self.auth.as_mut().map(|a| a.seal(&gm));
        let max = self.cfg.limits.max_bottle;
        (self.outbox).transmit(&mut self.stats, LinkId(0), &gm, max, seal);
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

    /// Queues `bottle` for the AC; in pre-shared-key mode, sealed once the AC's challenge
    /// is known. A relinked session that the AC has not moved yet sends nothing but its
    /// GOOD_MORNING and, leaving, its GOOD_BYE: the AC would answer anything else from the
    /// new link as a stranger's, ending the session.
    fn send(&mut self, bottle: &Bottle<'_>) {
        if self.silence.hold && !matches!(bottle, Bottle::GoodBye(_) | Bottle::GoodByeAck(_)) {
            return;
        }
        let seal = self.auth.as_mut().map(|a| a.seal(bottle));
        let max = self.cfg.limits.max_bottle;
        (self.outbox).transmit(&mut self.stats, LinkId(0), bottle, max, seal);
    }

    fn next_deadline(&self) -> Instant {
        match &self.phase {
            Phase::Joining { next_at, .. } | Phase::Leaving { next_at, .. } => *next_at,
            Phase::Left => Instant::MAX,
            Phase::Joined(s) => {
                let end = s
                    .waiting_since
                    .map_or(s.lease_until, |since| since.plus_micros(s.dead()));
                let mut at = s.next_hello_at.min(end);
                // Relinked: only the GOOD_MORNING is sent until the AC answers.
                let hold = self.silence.hold;
                if !hold {
                    at = at.min(s.ack_due);
                }
                if s.mode == StateMode::Separate && !hold {
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
                let timers = &self.timers;
                let dead = self.last_dead.unwrap_or(timers.dead);
                let cap = dead.min(timers.join_retry_max).max(timers.join_retry);
                if *leaving && *backoff >= cap {
                    // No answer for a long while: whatever session there was will die.
                    self.phase = Phase::Left;
                    self.outbox.event(DeviceEvent::Left);
                    return;
                }
                if !*leaving && self.auth.as_ref().is_some_and(|a| a.sent_any()) {
                    // The answer to a challenge went unanswered: start over with a fresh
                    // nonce, so that no challenge kept from this attempt (the AC's, from
                    // before it restarted, or one replayed) holds up the next.
                    self.auth = None;
                    *nonce = JoinNonce(self.rng.next_u64().to_le_bytes());
                    *first_sent = None;
                }
                first_sent.get_or_insert(now);
                // Half the backoff to one and a half of it, in whole microseconds: no
                // floating point, which a microcontroller would emulate in software.
                let wait = (*backoff / 2).saturating_add(self.rng.below(*backoff));
                *next_at = now.plus_micros(wait);
                *backoff = backoff.saturating_add(*backoff).min(cap);
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
                *next_at = now.plus_micros(self.pacing.rto.saturating_mul(1 << (*tries).min(4)));
                let bye = Bottle::GoodBye(GoodBye { session: *session });
                self.send(&bye);
            }
            Phase::Joined(s) => {
                match s.waiting_since {
                    // No lease came for a whole dead interval: the AC has given up on
                    // this session, or will; nothing ran in it.
                    Some(since) if since.plus_micros(s.dead()) <= now => {
                        return self.lose_session(now, StopReason::Fenced)
                    }
                    None if s.lease_until <= now => {
                        return self.lose_session(now, StopReason::Fenced)
                    }
                    _ => {}
                }
                if self.silence.hold {
                    // Relinked and not answered since: until the AC has moved the session
                    // to the new link (its answer to the GOOD_MORNING), it would refuse the
                    // session's HELLOs and state from there as a stranger's. The HELLO
                    // outstanding went where the device no longer is.
                    s.ack_due = Instant::MAX;
                    if s.next_hello_at <= now {
                        s.next_hello_at = now.plus_micros(s.hello());
                        let nonce = s.nonce;
                        self.send_good_morning(nonce);
                    }
                } else {
                    if s.next_hello_at <= now || s.ack_due <= now {
                        self.send_hello(now);
                    }
                    self.send_state_chunks(now, false);
                }
                self.morph_timeout(now);
            }
            _ => {}
        }
    }

    fn on_bottle(&mut self, now: Instant, bottle: Bottle<'_>) -> Result<(), InputError> {
        match bottle {
            Bottle::GoodMorningAck(ack) => self.on_good_morning_ack(now, ack),
            Bottle::Reject(r) => self.on_reject(now, r),
            Bottle::HelloAck(a) => self.on_hello_ack(now, a),
            Bottle::StateAck(a) => self.on_state_ack(now, a),
            Bottle::Morph(m) => self.on_morph(m),
            Bottle::ObjectChunk(c) => self.on_object_chunk(now, c),
            Bottle::MorphFail(f) => self.on_cancel(f),
            Bottle::GoodBye(g) => self.on_good_bye(g),
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

    /// The AC dismissed the device: everything stops.
    #[cold]
    #[inline(never)]
    fn on_good_bye(&mut self, g: GoodBye) -> Result<(), InputError> {
        self.joined(g.session)?;
        if let Phase::Joined(s) = core::mem::replace(&mut self.phase, Phase::Left) {
            self.stop_all(&s, StopReason::Dismissed);
        }
        self.send(&Bottle::GoodByeAck(GoodByeAck { session: g.session }));
        self.outbox.event(DeviceEvent::Left);
        Ok(())
    }

    #[cold]
    #[inline(never)]
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
                *next_at = now.plus_micros(self.timers.join_retry_max);
                self.outbox
                    .event(DeviceEvent::Rejected { reason: r.reason });
                Ok(())
            }
            // The AC refused the session's GOOD_MORNING (sent again on a new link): it
            // knows no session of that join.
            Phase::Joined(s) if s.nonce == r.nonce && r.session == SessionId::NONE => {
                self.lose_session(now, StopReason::SessionLost);
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

    /// Stops everything and joins again with a new nonce.
    #[cold]
    #[inline(never)]
    fn lose_session(&mut self, now: Instant, why: StopReason) {
        let joining = Phase::Joining {
            nonce: JoinNonce(self.rng.next_u64().to_le_bytes()),
            first_sent: None,
            next_at: now,
            backoff: self.timers.join_retry,
            leaving: false,
        };
        self.auth = None;
        if let Phase::Joined(s) = core::mem::replace(&mut self.phase, joining) {
            self.stop_all(&s, why);
        }
        self.silence_from(now, false);
        self.on_timeout(now);
    }

    fn stop_all(&mut self, s: &Session, why: StopReason) {
        if s.waiting_since.is_some() {
            return;
        }
        for h in &s.comps {
            self.outbox.event(DeviceEvent::Stop {
                computation: h.name,
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
