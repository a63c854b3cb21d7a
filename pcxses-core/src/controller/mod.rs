//! The Area Controller: device manager, liveness detector, policy engine and migrations.

mod auth;
mod changes;
mod command;
mod config;
mod event;
mod journal;
mod occupancy;
mod party;
mod recovery;
mod refusals;
mod session_ids;
mod snapshot;

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;
use core::time::Duration;

pub use command::ControllerCommand;
use config::MsBounds;
pub use config::{
    Bounds, ComputationSpec, ConfigError, ControllerConfig, DeviceSpec, ObjectSpec, RefusalLimits,
};
pub use event::{ComputationId, ControllerEvent, DeviceId, MigrationFailure};
pub use journal::{CommitError, Journal};
pub use occupancy::Occupancy;
pub(crate) use party::CHUNK_OVERHEAD;
pub use snapshot::SnapshotError;

use crate::bottle::{Bottle, Mode};
use crate::error::{CommandError, InputError};
use crate::ids::{JoinNonce, SessionId, Signature};
use crate::io::{LinkId, Machine, Outbox, Output, Seal};
use crate::limits::Limits;
use crate::policy::{AuthLevel, Policy, PriorityPolicy};
use crate::psk::{Challenger, Direction, Psk, ReplayWindow};
use crate::repository::Repository;
use crate::rng::Rng;
use crate::signing::CodeSigner;
use crate::stats::Stats;
use crate::time::{to_ms, Clock, Instant};
use crate::timer::Deadlines;
use crate::transfer::{ChunkReceiver, ChunkSender, Pacing};
use changes::Changes;
use refusals::RefusalGate;
use session_ids::SessionIds;
use snapshot::Part;

/// The Area Controller as a Sans-IO state machine.
///
/// Feed it the bottles that arrive with [`Controller::handle_receive`], then drain
/// [`Controller::poll_output`] until it returns [`Output::Timeout`]; call
/// [`Controller::handle_timeout`] when that time comes. Commands ([`Controller::release`], [`Controller::dismiss`]) only queue work: drain
/// after them too. See the crate docs for the run loop.
pub struct Controller {
    settings: Settings,
    clock: Clock,
    devices: Vec<DeviceEntry>,
    comps: Vec<CompEntry>,
    device_index: BTreeMap<Box<str>, u32>,
    comp_index: BTreeMap<Box<str>, u32>,
    session_ids: SessionIds,
    dead_timers: Deadlines,
    attempts: BTreeMap<u32, Attempt>,
    attempt_timers: Deadlines,
    /// When quarantined computations are tried again, by computation.
    retry_timers: Deadlines,
    /// Computations waiting for a target: every candidate busy, or none (orphaned).
    waiting: BTreeSet<u32>,
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
    /// MORPH pacing: when the next MORPH may start (a generic cell rate: the theoretical
    /// arrival time of the next start).
    pace_tat: Instant,
    /// Computations with a target but waiting for their turn to start, oldest first.
    paced: VecDeque<u32>,
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
    mode: Option<Mode>,
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
    stall_grace: Duration,
    require_auth: bool,
    allow_auth_downgrade: bool,
}

/// What a session id in the map stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SessionRef {
    device: u32,
    status: SessionStatus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SessionStatus {
    Live,
    /// Declared dead: its bottles are answered "replaced".
    Replaced,
    /// Dismissed by the AC: its bottles are answered GOOD_BYE.
    Dismissed,
}

/// One registered device. The live session's fields a HELLO touches come first, and the
/// entry starts on a cache line, so that a HELLO reads and writes one line of it. Fields
/// are ordered by size so that `repr(C)` adds no padding: 192 bytes in all.
#[repr(C, align(64))]
struct DeviceEntry {
    session: Option<Session>,
    name: Box<str>,
    capabilities: Box<[Box<str>]>,
    native: Box<[u32]>,
    /// The link of the retired session: its bottles are answered there only.
    retired_link: LinkId,
    /// The last session declared dead or dismissed, still answered as such.
    retired: SessionId,
    /// Sessions opened so far: the next session id's generation.
    generation: u32,
    max_hosted: u16,
    /// MORPH attempts towards this device.
    morphs_in: u16,
    retired_status: SessionStatus,
}

/// A live session; the fields of the HELLO path first (see [`DeviceEntry`]).
#[repr(C)]
struct Session {
    dead_at: Instant,
    last_hello: Instant,
    link: LinkId,
    id: SessionId,
    dead_ms: u32,
    max_bottle: u16,
    chunk: u16,
    run_len: u16,
    next_handle: u16,
    hello_ms: u32,
    fence_ms: u32,
    /// The dead timer's live heap entry.
    armed: Instant,
    nonce: JoinNonce,
    /// `(handle, computation)`; the first `run_len` are the GOOD_MORNING ack's run list.
    hosted: Vec<(u16, u32)>,
    /// State versions being reassembled, one per handle at most.
    rx: Vec<StateRx>,
    mode: Mode,
    /// How the device was authenticated in this session.
    auth: AuthLevel,
}

struct StateRx {
    handle: u16,
    version: u32,
    receiver: ChunkReceiver,
}

struct CompEntry {
    name: Box<str>,
    objects: Box<[ObjectSpec]>,
    hosts: Box<[u32]>,
    requires: Box<[Box<str>]>,
    home: Option<u32>,
    lkgs: Vec<u8>,
    /// Version of `lkgs` in the session it came from.
    lkgs_version: u32,
    lkgs_from: SessionId,
    /// How authenticated the session `lkgs` came from was: the state goes back to no device
    /// less authenticated (unless the configuration allows a downgrade).
    lkgs_auth: AuthLevel,
    /// Last manifest sequence number issued.
    sequence: u64,
    /// Consecutive failed targets.
    failures: u32,
    /// Quarantines in a row, without a state stored in between: the retry backs off.
    quarantines: u32,
    /// When a quarantined computation is tried again; [`Instant::MAX`] otherwise.
    retry_at: Instant,
    place: Place,
}

enum Place {
    /// Not running: its home has not joined yet.
    Unplaced,
    Running {
        device: u32,
        session: SessionId,
        handle: u16,
        /// The MORPH that brought it here; 0 when it runs on its home device.
        morph: u32,
        /// Arrived by MORPH and has not stored a state on this host yet.
        unproven: bool,
    },
    Recovering(Box<Recovery>),
    Quarantined,
    /// Its host left with GOOD_BYE: never recovered.
    Stopped,
}

struct Recovery {
    from: u32,
    /// The failed session: its device may host the computation again once it re-joins.
    from_session: SessionId,
    detected_at: Instant,
    /// Sessions of targets that failed in this recovery, at most one per device (its
    /// latest) and [`recovery::MAX_TRIED`] in all, oldest first; a target that joins again
    /// is a new incarnation and eligible again.
    tried: Vec<SessionId>,
    /// The last target whose MORPH made no progress: tried again only when no other target
    /// is free, since a stall says more about the network than about the target.
    stalled: SessionId,
    /// The computation is being handed back to its home, which just joined, with its LKGS:
    /// if the home leaves or re-joins meanwhile, it waits for its home again.
    handing_back: bool,
    /// How authenticated the failed session was: the computation moves only to targets at
    /// least as authenticated (unless the configuration allows a downgrade).
    from_auth: AuthLevel,
    /// The MORPH attempt in flight, by morph id.
    attempt: Option<u32>,
    attempts: u32,
    orphaned: bool,
}

struct Attempt {
    comp: u32,
    target: u32,
    session: SessionId,
    handle: u16,
    started_at: Instant,
    last_progress: Instant,
    manifest: Vec<u8>,
    signature: Option<Signature>,
    stream: Vec<u8>,
    sender: ChunkSender,
    stage: Stage,
    /// Retransmission timeout of the header or the cancel.
    rto: Duration,
    armed: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// MORPH header sent at the instant, no answer yet.
    Header(Instant),
    Streaming,
    /// The target holds the whole stream; the MORPH header, sent again at the instant,
    /// asks for its answer (MORPH ack or fail), which a lost datagram would otherwise
    /// keep from the AC.
    Installing(Instant),
    /// Abandoned: MORPH fail sent to the target at the instant; waiting for its MORPH
    /// fail (or death) before the computation moves on.
    Cancelling(Instant, MigrationFailure),
}

impl Controller {
    /// A controller for a validated configuration, reading object code from `repo`, with
    /// the [`PriorityPolicy`].
    pub fn new(
        config: ControllerConfig,
        repo: impl Repository + Send + 'static,
        now: Instant,
    ) -> Result<Controller, ConfigError> {
        config.validate()?;
        let device_index: BTreeMap<Box<str>, u32> = config
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| (Box::from(d.name.as_str()), i as u32))
            .collect();
        let comp_index: BTreeMap<Box<str>, u32> = config
            .computations
            .iter()
            .enumerate()
            .map(|(i, c)| (Box::from(c.name.as_str()), i as u32))
            .collect();
        let mut comps: Vec<CompEntry> = config
            .computations
            .iter()
            .map(|c| CompEntry {
                name: c.name.as_str().into(),
                objects: c.objects.clone().into_boxed_slice(),
                hosts: c.hosts.iter().map(|h| device_index[h.as_str()]).collect(),
                requires: c.requires.iter().map(|r| r.as_str().into()).collect(),
                home: None,
                lkgs: Vec::new(),
                lkgs_version: 0,
                lkgs_from: SessionId::NONE,
                lkgs_auth: AuthLevel::Unauthenticated,
                sequence: 0,
                failures: 0,
                quarantines: 0,
                retry_at: Instant::MAX,
                place: Place::Unplaced,
            })
            .collect();
        let devices = config
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let native: Box<[u32]> = d.runs.iter().map(|r| comp_index[r.as_str()]).collect();
                for &c in native.iter() {
                    comps[c as usize].home = Some(i as u32);
                }
                DeviceEntry {
                    name: d.name.as_str().into(),
                    capabilities: d.capabilities.iter().map(|c| c.as_str().into()).collect(),
                    native,
                    max_hosted: d.max_hosted,
                    session: None,
                    retired: SessionId::NONE,
                    retired_status: SessionStatus::Replaced,
                    generation: 0,
                    morphs_in: 0,
                    retired_link: LinkId::default(),
                }
            })
            .collect();
        let mut rng = Rng::new(config.seed);
        let session_ids = SessionIds::new(&mut rng, config.devices.len());
        let refusals = RefusalGate::new(&config.refusals, rng.next_u64());
        let psk = if config.devices.iter().any(|d| d.psk.is_some()) {
            config
                .devices
                .iter()
                .map(|d| {
                    d.psk.clone().map(|psk| {
                        Box::new(PskDevice {
                            psk,
                            last_issued_ms: None,
                            auth: None,
                        })
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut secret = [0u8; 32];
        for word in secret.chunks_mut(8) {
            word.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        Ok(Controller {
            psk,
            challenger: Challenger::new(secret),
            joining: None,
            asked: Instant::MAX,
            pace_tat: Instant::default(),
            paced: VecDeque::new(),
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
                stall_grace: config.stall_grace,
                require_auth: config.require_auth,
                allow_auth_downgrade: config.allow_auth_downgrade,
            },
            clock: Clock::new(now),
            devices,
            comps,
            device_index,
            comp_index,
            session_ids,
            dead_timers: Deadlines::default(),
            attempts: BTreeMap::new(),
            attempt_timers: Deadlines::default(),
            retry_timers: Deadlines::default(),
            waiting: BTreeSet::new(),
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
        let now = self.clock.advance(now);
        self.absorb_stall(now);
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
        let now = self.clock.advance(now);
        self.absorb_stall(now);
        self.on_timeout(now);
    }

    /// Keeps `journal` durable before anything is acknowledged. The journal must already
    /// hold [`Controller::snapshot`] as of now; from then on, each drain of
    /// [`Controller::poll_output`] that follows a change first hands the journal one
    /// record per changed device, computation or counter (see [`Controller::restore`]),
    /// commits it, and only then hands out its outputs. If the commit fails, the drain's
    /// transmits are dropped (counted) and [`ControllerEvent::JournalFailed`] says so:
    /// nothing unrecorded is acknowledged.
    pub fn with_journal(mut self, journal: Box<dyn Journal>) -> Controller {
        self.journal = Some(journal);
        self.changes.start();
        self
    }

    /// The next output. Drain until [`Output::Timeout`], which always ends a drain.
    pub fn poll_output(&mut self) -> Output<'_, ControllerEvent> {
        if self.changes.pending() {
            self.commit();
        }
        let next = self.next_deadline();
        self.asked = next;
        self.outbox.poll(next)
    }

    /// Hands the journal a record of every changed part and commits it.
    fn commit(&mut self) {
        let Some(mut journal) = self.journal.take() else {
            return;
        };
        let devices = self.changes.devices.list().iter().map(|&d| Part::Device(d));
        let comps = self.changes.comps.list().iter().map(|&c| Part::Comp(c));
        let morphs = self.changes.morphs.then_some(Part::Morphs);
        // One buffer for every record of the commit.
        let mut record = Vec::new();
        for part in morphs.into_iter().chain(devices).chain(comps) {
            self.change(part, &mut record);
            journal.record(&record);
        }
        self.changes.clear();
        if journal.commit(self).is_err() {
            let dropped = self.outbox.drop_transmits();
            self.stats.dropped_transmits += dropped as u64;
            let at = self.clock.latest();
            self.outbox.event(ControllerEvent::JournalFailed { at });
        }
        self.journal = Some(journal);
    }

    /// Moves every dead timer by how late the AC is past the deadline it asked for, when
    /// that is more than the stall grace: the bottles that came meanwhile are still unread.
    fn absorb_stall(&mut self, now: Instant) {
        if self.asked >= now {
            return;
        }
        let late = now.saturating_since(self.asked);
        self.asked = now;
        if late <= self.settings.stall_grace {
            return;
        }
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
        self.devices.get(device.0 as usize).map_or("", |d| &d.name)
    }

    /// The name of a registered computation.
    pub fn computation_name(&self, computation: ComputationId) -> &str {
        self.comps
            .get(computation.0 as usize)
            .map_or("", |c| &c.name)
    }

    /// A device by name.
    pub fn device_id(&self, name: &str) -> Option<DeviceId> {
        self.device_index.get(name).map(|&i| DeviceId(i))
    }

    /// A computation by name.
    pub fn computation_id(&self, name: &str) -> Option<ComputationId> {
        self.comp_index.get(name).map(|&i| ComputationId(i))
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

    /// Whether device `d` has a pre-shared key: every bottle of it that reaches the
    /// protocol was sealed with it (plain ones are refused before).
    fn has_key(&self, d: u32) -> bool {
        self.psk.get(d as usize).is_some_and(Option::is_some)
    }

    /// How authenticated a bottle of device `d` is, `identity` being what the transport
    /// authenticated (already checked to be `d`'s name).
    fn auth_level(&self, d: u32, identity: Option<&str>) -> AuthLevel {
        if identity.is_some() || self.has_key(d) {
            AuthLevel::Authenticated
        } else {
            AuthLevel::Unauthenticated
        }
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
        Some(match &self.comps.get(computation.0 as usize)?.place {
            Place::Unplaced => Placement::Unplaced,
            Place::Running { device, .. } => Placement::Running(DeviceId(*device)),
            Place::Recovering(r) if r.attempt.is_some() => Placement::Migrating,
            Place::Recovering(r) if r.orphaned => Placement::Orphaned,
            Place::Recovering(_) => Placement::Waiting,
            Place::Quarantined => Placement::Quarantined,
            Place::Stopped => Placement::Stopped,
        })
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
        let now = self.clock.advance(now);
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
        let now = self.clock.advance(now);
        let d = device.0;
        let dev = self
            .devices
            .get(d as usize)
            .ok_or(CommandError::UnknownDevice)?;
        let Some(s) = dev.session.as_ref() else {
            return Err(CommandError::NotJoined);
        };
        let (id, link, max) = (s.id, s.link, usize::from(s.max_bottle));
        self.send(
            link,
            &Bottle::GoodBye(crate::bottle::GoodBye { session: id }),
            max,
        );
        self.end_session(d, now, SessionEnd::Dismissed);
        Ok(())
    }

    /// What a session id stands for: O(1), no table.
    fn lookup(&self, id: SessionId) -> Option<SessionRef> {
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

    fn next_deadline(&self) -> Instant {
        let a = self.dead_timers.next().unwrap_or(Instant::MAX);
        let b = self.attempt_timers.next().unwrap_or(Instant::MAX);
        let b = b.min(self.retry_timers.next().unwrap_or(Instant::MAX));
        let c = match self.paced.is_empty() {
            false => self.next_turn().unwrap_or(Instant::MAX),
            true => Instant::MAX,
        };
        a.min(b).min(c)
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
                (self.retry_timers).pop_live(now, |k| Some(comps.get(k as usize)?.retry_at))
            else {
                break;
            };
            self.lift_quarantine(c, now);
        }
        self.release_paced(now);
    }

    /// Queues `bottle` on `link`, sealed if its session has keys: a live one, or the one
    /// just ended, so that the device believes the REJECT or GOOD_BYE that ends it.
    fn send(&mut self, link: LinkId, bottle: &Bottle<'_>, max: usize) {
        let session = bottle.session().filter(|_| !self.psk.is_empty());
        let auth = match session.and_then(|id| Some((id, self.lookup(id)?.device))) {
            Some((id, d)) => auth_of(&mut self.psk, d, id),
            None => None,
        };
        transmit(&mut self.outbox, &mut self.stats, link, bottle, max, auth);
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

/// Pre-shared-key mode: a device's key, and its session's keys.
struct PskDevice {
    psk: Psk,
    /// When the challenge of the latest session was issued: an older one opens no new
    /// session, so a recorded GOOD_MORNING cannot be replayed to replace a newer session.
    last_issued_ms: Option<u64>,
    auth: Option<SessionAuth>,
}

/// The session key of device `d`'s session `session`, if it has one.
fn auth_of(
    psk: &mut [Option<Box<PskDevice>>],
    d: u32,
    session: SessionId,
) -> Option<&mut SessionAuth> {
    psk.get_mut(d as usize)?
        .as_mut()?
        .auth
        .as_mut()
        .filter(|a| a.session == session)
}

/// Pre-shared-key mode: a session's key and counters (see [`crate::psk`]).
pub(crate) struct SessionAuth {
    /// The session they belong to.
    pub(crate) session: SessionId,
    /// When the AC issued that challenge: an older one opens no new session.
    pub(crate) issued_ms: u64,
    pub(crate) key: [u8; 32],
    /// The counter of the next bottle sent.
    pub(crate) sent: u32,
    /// Counters of the device's bottles seen.
    pub(crate) window: ReplayWindow,
    /// When the device was last told to jump its counter ahead (REJECT `Resync`).
    pub(crate) last_resync: Instant,
}

/// Queues `bottle` on `link`; sealed with `auth`'s session key when given.
fn transmit(
    outbox: &mut Outbox<ControllerEvent>,
    stats: &mut Stats,
    link: LinkId,
    bottle: &Bottle<'_>,
    max: usize,
    auth: Option<&mut SessionAuth>,
) {
    let seal = match auth {
        Some(a) => match Seal::next(&a.key, Direction::ToDevice, &mut a.sent, &[]) {
            Some(seal) => Some(seal),
            None => {
                stats.dropped_transmits += 1;
                return;
            }
        },
        None => None,
    };
    if !outbox.send(link, bottle, max, seal) {
        stats.dropped_transmits += 1;
    }
}

/// Where a computation is, as [`Controller::placement`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Not running: its home device has not joined.
    Unplaced,
    /// Running on this device.
    Running(DeviceId),
    /// Being moved: a MORPH is in flight.
    Migrating,
    /// Recovering, waiting for a target with room.
    Waiting,
    /// Recovering, with no capable device alive: retried when one joins.
    Orphaned,
    /// Failed on too many targets in a row; tried again after a backoff
    /// ([`ControllerConfig::quarantine_retry`]) or when [`Controller::release`]d.
    Quarantined,
    /// Its host left with GOOD_BYE: it is not recovered.
    Stopped,
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

impl Recovery {
    fn new(from: u32, from_session: SessionId, detected_at: Instant) -> Recovery {
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
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_device_entry_is_three_cache_lines() {
        assert_eq!(core::mem::size_of::<super::DeviceEntry>(), 192);
    }
}
