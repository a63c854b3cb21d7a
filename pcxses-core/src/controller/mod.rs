//! The Area Controller: device manager, liveness detector, policy engine and migrations.

mod attempts;
mod auth;
mod changes;
mod command;
mod computation;
mod config;
mod event;
mod hosted;
mod journal;
mod lists;
mod merge;
mod morph;
mod names;
mod occupancy;
mod paced;
mod recovery;
mod refusals;
mod registry;
mod session;
mod session_ids;
mod snapshot;
mod status;
mod targets;
#[cfg(test)]
mod test_fleet;
mod waiting;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::time::Duration;

use attempts::Attempts;
pub use command::ControllerCommand;
pub use computation::Placement;
use config::MsBounds;
pub use config::{
    Bounds, ComputationSpec, ConfigError, ControllerConfig, DeviceSpec, ObjectSpec, RefusalLimits,
};
pub use event::{
    ComputationId, ControllerEvent, DeviceId, MigrationFailure, OrphanReason, QuarantineReason,
};
pub use journal::{CommitError, Journal};
pub use occupancy::Occupancy;
pub use snapshot::{
    ChangeView, ComputationView, DeviceView, PlacementView, SessionView, SnapshotError,
    SnapshotView,
};
pub use status::{
    Census, ComputationStatus, ControllerStatus, DeviceStatus, LiveSession, Liveness,
    RecoveryStatus,
};

use crate::error::{CommandError, InputError};
use crate::io::{LinkId, Machine, Outbox, Output};
use crate::limits::Limits;
use crate::policy::{AuthLevel, Policy, PriorityPolicy};
use crate::psk::Challenger;
use crate::repository::Repository;
use crate::rng::Rng;
use crate::signing::CodeSigner;
use crate::stats::Stats;
use crate::time::{to_ms, Clock, Instant};
use crate::timer::Deadlines;
use crate::transfer::Pacing;
use crate::wire::bottle::{Bottle, GoodBye, StateMode};
use crate::wire::ids::SessionId;
use auth::{psk_devices, seal_to, PskDevice, SessionAuth};
use changes::Changes;
use computation::CompEntry;
use paced::Paced;
use refusals::RefusalGate;
use registry::Registry;
use session::{DeviceEntry, Reassemblies, SessionEnd, SessionStatus};
use session_ids::SessionIds;
use targets::Targets;
use waiting::Waiting;

/// The Area Controller as a Sans-IO state machine.
///
/// Feed it the bottles that arrive with [`Controller::handle_receive`], then drain
/// [`Controller::poll_output`] until it returns [`Output::Timeout`]; call
/// [`Controller::handle_timeout`] when that time comes. Commands ([`Controller::release`], [`Controller::dismiss`]) only queue work: drain
/// after them too. See the crate docs for the run loop.
pub struct Controller {
    settings: Settings,
    clock: Clock,
    /// Nothing has been handled since [`Controller::new`]: only then is it restored.
    fresh: bool,
    registry: Registry,
    devices: Vec<DeviceEntry>,
    comps: Vec<CompEntry>,
    /// The live devices, for placement.
    targets: Targets,
    /// State versions being reassembled.
    reassemblies: Reassemblies,
    session_ids: SessionIds,
    dead_timers: Deadlines,
    attempts: Attempts,
    attempt_timers: Deadlines,
    /// When quarantined computations are tried again, by computation.
    retry_timers: Deadlines,
    /// Computations waiting for a target: every candidate busy, or none (orphaned).
    waiting: Waiting,
    next_morph: u32,
    outbox: Outbox<ControllerEvent>,
    stats: Stats,
    repo: Box<dyn Repository + Send>,
    policy: Box<dyn Policy + Send>,
    signer: Option<CodeSigner>,
    /// Pre-shared-key mode: per device, its key and session keys; empty when no device
    /// has a key.
    psk: Vec<Option<Box<PskDevice>>>,
    /// Issues and checks the challenges of pre-shared-key joins.
    challenger: Challenger,
    /// The keys of the sealed GOOD_MORNING being handled, for the session it opens.
    joining: Option<SessionAuth>,
    /// The deadline the last drain asked to be woken at.
    asked: Instant,
    /// The last input found the AC stalled ([`Controller::absorb_stall`]).
    stalled: bool,
    /// MORPH pacing: when the next MORPH may start (a generic cell rate: the theoretical
    /// arrival time of the next start).
    pace_tat: Instant,
    /// Computations with a target but waiting for their turn to start, oldest first.
    paced: Paced,
    /// The runtime's durable store; see [`Controller::with_journal`].
    journal: Option<Box<dyn Journal>>,
    /// What the journal has not been given yet.
    changes: Changes,
    /// How often refused bottles are answered.
    refusals: RefusalGate,
    /// The length of the bottle being handled; 0 between inputs.
    inbound_len: usize,
}

/// The numbers of the configuration, in the form the machine uses them.
#[derive(Clone, Debug)]
struct Settings {
    hello_ms: MsBounds,
    dead_ms: MsBounds,
    mode: Option<StateMode>,
    fencing: bool,
    limits: Limits,
    pacing: Pacing,
    morph_timeout: Duration,
    max_morphs_per_target: u16,
    /// Time between MORPH starts, and how far ahead of that pace a burst may run;
    /// `None`: no limit.
    pace: Option<(Duration, Duration)>,
    quarantine_after: u32,
    /// The first wait before a quarantined computation is tried again; `None`: never.
    quarantine_retry: Option<Duration>,
    restart_grace_ms: u32,
    dead_grid: Duration,
    stall_grace: Duration,
    require_auth: bool,
    allow_auth_downgrade: bool,
}

impl Controller {
    /// A controller for a validated configuration, reading object code from `repo`, with
    /// the [`PriorityPolicy`].
    pub fn new(
        config: ControllerConfig,
        repo: impl Repository + Send + 'static,
        now: Instant,
    ) -> Result<Controller, ConfigError> {
        let (devices, comps) = config.names();
        if let Some(e) = config.errors_named(&devices, &comps).into_iter().next() {
            return Err(e);
        }
        let (registry, devices, comps) = Registry::new(&config, (devices, comps));
        let mut rng = Rng::new(config.seed);
        let session_ids = SessionIds::new(&mut rng, config.devices.len());
        let refusals = RefusalGate::new(&config.refusals, rng.next_u64());
        let psk = psk_devices(&config.devices);
        let mut secret = [0u8; 32];
        for word in secret.chunks_mut(8) {
            word.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        Ok(Controller {
            psk,
            challenger: Challenger::new(secret),
            joining: None,
            asked: Instant::MAX,
            stalled: false,
            pace_tat: Instant::default(),
            paced: Paced::default(),
            journal: None,
            changes: Changes::default(),
            refusals,
            inbound_len: 0,
            settings: Settings {
                hello_ms: config.hello.to_ms(),
                dead_ms: config.dead.to_ms(),
                mode: config.mode,
                fencing: config.fencing,
                limits: config.limits,
                pacing: Pacing {
                    window: config.window,
                    rto: config.rto,
                    rto_max: config.rto_max,
                },
                morph_timeout: config.morph_timeout,
                max_morphs_per_target: config.max_morphs_per_target,
                pace: (config.morphs_per_s > 0).then(|| {
                    let every = Duration::from_micros(1_000_000 / u64::from(config.morphs_per_s));
                    (every, every * (config.morph_burst.max(1) - 1))
                }),
                quarantine_after: config.quarantine_after,
                quarantine_retry: (!config.quarantine_retry.is_zero())
                    .then_some(config.quarantine_retry),
                restart_grace_ms: to_ms(config.restart_grace),
                dead_grid: config.dead_grid,
                stall_grace: config.stall_grace,
                require_auth: config.require_auth,
                allow_auth_downgrade: config.allow_auth_downgrade,
            },
            clock: Clock::new(now),
            fresh: true,
            registry,
            devices,
            comps,
            targets: Targets::default(),
            reassemblies: Reassemblies::new(),
            session_ids,
            dead_timers: Deadlines::default(),
            attempts: Attempts::default(),
            attempt_timers: Deadlines::default(),
            retry_timers: Deadlines::default(),
            waiting: Waiting::default(),
            next_morph: 1,
            outbox: Outbox::new(config.outbox_limit),
            stats: Stats::default(),
            repo: Box::new(repo),
            policy: Box::new(PriorityPolicy),
            signer: None,
        })
    }

    /// Signs every MORPH manifest with `signer`, for devices provisioned with its public
    /// key (see [`crate::signing`]).
    pub fn with_code_signer(mut self, signer: CodeSigner) -> Controller {
        self.signer = Some(signer);
        self
    }

    /// Replaces the target-selection policy.
    pub fn with_policy(mut self, policy: impl Policy + Send + 'static) -> Controller {
        self.policy = Box::new(policy);
        self
    }

    /// Feeds the bytes of one bottle that arrived at `now` on `from` (one datagram, or one
    /// frame of a stream). `identity` is the peer's name when the transport authenticated
    /// it (a certificate's name): a bottle claiming another device is refused. A refused
    /// bottle returns the reason; it was counted in [`Controller::stats`] and changed no
    /// protocol state, so the caller logs it and carries on.
    pub fn handle_receive(
        &mut self,
        now: Instant,
        from: LinkId,
        bytes: &[u8],
        identity: Option<&str>,
    ) -> Result<(), InputError> {
        let now = self.arrive(now);
        self.stats.received += 1;
        self.inbound_len = bytes.len();
        let result = match self.open(now, from, bytes) {
            Ok(bottle) => self.on_bottle(now, from, bottle, identity),
            Err(InputError::Decode(e)) => {
                // Counted where it is refused.
                let e = self.refuse_undecodable(now, from, e);
                self.inbound_len = 0;
                return Err(e);
            }
            Err(e) => Err(e),
        };
        self.joining = None;
        self.inbound_len = 0;
        result.inspect_err(|e| self.stats.count(e))
    }

    /// Time passed: runs the timers due at `now` (see [`Machine::handle_timeout`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.arrive(now);
        self.on_timeout(now);
    }

    /// The time of an input or command handled now ([`Controller::tick`]), once a stall is
    /// absorbed.
    fn arrive(&mut self, now: Instant) -> Instant {
        let last = self.clock.latest();
        let now = self.tick(now);
        self.absorb_stall(last, now);
        now
    }

    /// The time of what is handled now: `now`, or the latest time seen if `now` is earlier.
    fn tick(&mut self, now: Instant) -> Instant {
        self.fresh = false;
        self.clock.advance(now)
    }

    /// The next output. Drain until [`Output::Timeout`], which always ends a drain.
    pub fn poll_output(&mut self) -> Output<'_, ControllerEvent> {
        if self.changes.pending() {
            self.commit();
        } else {
            self.check_journal();
        }
        let next = self.next_deadline();
        self.asked = next;
        self.outbox.poll(next)
    }

    /// When the AC is later than the stall grace past the deadline it asked for, moves
    /// every dead timer: the bottles that came meanwhile are still unread. The first stall
    /// in a row moves them by the time since the AC last handled anything (`last`), or
    /// since that deadline if it is earlier; a stall right after a stall, by how late the
    /// AC is past the deadline only, so that an AC starved for good still declares deaths.
    fn absorb_stall(&mut self, last: Instant, now: Instant) {
        if now <= last {
            // The same instant as the last input: judged then.
            return;
        }
        let asked = self.asked;
        if asked < now {
            self.asked = now;
        }
        let lateness = now.saturating_since(asked);
        let stalled = lateness > self.settings.stall_grace;
        let in_a_row = core::mem::replace(&mut self.stalled, stalled);
        if !stalled {
            return;
        }
        let late = match in_a_row {
            true => lateness,
            false => now.saturating_since(last.min(asked)),
        };
        for s in self.devices.iter_mut().filter_map(|d| d.session.as_mut()) {
            s.dead_at += late;
        }
        self.outbox
            .event(ControllerEvent::Stalled { late, at: now });
    }

    /// Counters of received and refused bottles.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The name of a registered device.
    pub fn device_name(&self, device: DeviceId) -> &str {
        self.registry.devices.get(device.0)
    }

    /// The name of a registered computation.
    pub fn computation_name(&self, computation: ComputationId) -> &str {
        self.registry.comps.get(computation.0)
    }

    /// A device by name.
    pub fn device_id(&self, name: &str) -> Option<DeviceId> {
        self.registry.devices.find(name).map(DeviceId)
    }

    /// A computation by name.
    pub fn computation_id(&self, name: &str) -> Option<ComputationId> {
        self.registry.comps.find(name).map(ComputationId)
    }

    /// Number of registered devices.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// How authenticated the device's live session is, if it has one: sealed with its
    /// pre-shared key, or carried by a transport that authenticated it (a QUIC
    /// certificate), or neither.
    pub fn session_auth(&self, device: DeviceId) -> Option<AuthLevel> {
        Some(self.devices.get(device.0 as usize)?.session.as_ref()?.auth)
    }

    /// The device's live session, if it has one.
    pub fn session_of(&self, device: DeviceId) -> Option<SessionId> {
        self.devices
            .get(device.0 as usize)?
            .session
            .as_ref()
            .map(|s| s.id)
    }

    /// The stored LKGS of a computation: its bytes and its version in the session it came
    /// from. Empty until a state was stored.
    pub fn lkgs(&self, computation: ComputationId) -> Option<(&[u8], u32)> {
        let c = self.comps.get(computation.0 as usize)?;
        Some((&c.lkgs, c.lkgs_version))
    }

    /// Where a computation is in its life cycle.
    pub fn placement(&self, computation: ComputationId) -> Option<Placement> {
        Some(self.comps.get(computation.0 as usize)?.place.placement())
    }

    /// Number of registered computations.
    pub fn computation_count(&self) -> usize {
        self.comps.len()
    }

    /// Lifts a computation's quarantine at once: its failure count and its retry backoff
    /// reset and it is placed again.
    pub fn release(
        &mut self,
        now: Instant,
        computation: ComputationId,
    ) -> Result<(), CommandError> {
        let now = self.arrive(now);
        let c = self
            .comps
            .get_mut(computation.0 as usize)
            .ok_or(CommandError::UnknownComputation)?;
        c.quarantines = 0;
        self.lift_quarantine(computation.0, now);
        Ok(())
    }

    /// Ends a device's session from the AC's side: sends GOOD_BYE, stops its computations
    /// for good (they are not recovered), and answers its later bottles with GOOD_BYE.
    pub fn dismiss(&mut self, now: Instant, device: DeviceId) -> Result<(), CommandError> {
        let now = self.arrive(now);
        let d = device.0;
        let dev = self
            .devices
            .get(d as usize)
            .ok_or(CommandError::UnknownDevice)?;
        let Some(s) = dev.session.as_ref() else {
            return Err(CommandError::NotJoined);
        };
        let (id, link, max) = (s.id, s.link, usize::from(s.max_bottle));
        self.send(link, &Bottle::GoodBye(GoodBye { session: id }), max);
        self.end_session(d, now, SessionEnd::Dismissed);
        Ok(())
    }

    fn next_deadline(&self) -> Instant {
        let a = self.dead_timers.next_on(self.settings.dead_grid);
        let a = a.unwrap_or(Instant::MAX);
        let b = self.attempt_timers.next().unwrap_or(Instant::MAX);
        let b = b.min(self.retry_timers.next().unwrap_or(Instant::MAX));
        let c = match self.paced.is_empty() {
            false => self.next_turn().unwrap_or(Instant::MAX),
            true => Instant::MAX,
        };
        // Offers cut short go on at once.
        let d = match self.waiting.resuming() {
            true => self.clock.latest(),
            false => Instant::MAX,
        };
        a.min(b).min(c).min(d)
    }

    fn on_timeout(&mut self, now: Instant) {
        loop {
            let devices = &self.devices;
            let Some(d) = self.dead_timers.pop_live(now, |k| {
                devices.get(k as usize)?.session.as_ref().map(|s| s.armed)
            }) else {
                break;
            };
            self.on_dead_timer(d, now);
        }
        loop {
            let attempts = &self.attempts;
            let Some(m) = self
                .attempt_timers
                .pop_live(now, |k| attempts.get(&k).map(|a| a.armed))
            else {
                break;
            };
            self.on_attempt_timer(m, now);
        }
        loop {
            let comps = &self.comps;
            let Some(c) =
                (self.retry_timers).pop_live(now, |k| Some(comps.get(k as usize)?.retry_at()))
            else {
                break;
            };
            self.lift_quarantine(c, now);
        }
        self.release_paced(now);
        self.resume_offers(now);
    }

    /// Queues `bottle` on `link`, sealed if its session has keys: a live one, or the one
    /// just ended, so that the device believes the REJECT or GOOD_BYE that ends it.
    fn send(&mut self, link: LinkId, bottle: &Bottle<'_>, max: usize) {
        let session = bottle.session().filter(|_| !self.psk.is_empty());
        let seal = match session.and_then(|id| Some((id, self.lookup(id)?.device))) {
            Some((id, d)) => seal_to(&mut self.psk, d, id),
            None => None,
        };
        (self.outbox).transmit(&mut self.stats, link, bottle, max, seal);
    }

    /// Hands a bottle that arrived to the phase it belongs to.
    fn on_bottle(
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
                Some(r)
                    if r.status == SessionStatus::Dismissed
                        && self.may_come_from(r.device, from, identity, false) =>
                {
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
}

impl Machine for Controller {
    type Event = ControllerEvent;

    fn handle_timeout(&mut self, now: Instant) {
        Controller::handle_timeout(self, now);
    }

    fn poll_output(&mut self) -> Output<'_, ControllerEvent> {
        Controller::poll_output(self)
    }

    fn stats(&self) -> &Stats {
        Controller::stats(self)
    }
}
