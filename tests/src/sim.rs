//! One Controller and N Devices on a simulated network, in virtual time.
//!
//! Each device runs an application ([`crate::app`]) that steps its computations on a timer
//! of its own, independent of the device's protocol timeouts, as a computation thread
//! beside the protocol thread of a real process; after a freeze either may run first. The
//! application checks the device's fence lease before each step. After every step of the
//! simulation the checker asserts the protocol's invariants, among them:
//!
//! - I1: no computation steps on a device after its fence lease ran out, until the device
//!   re-joined and was told to run it again; the lease is tracked independently from the
//!   bottles the network carries ([`crate::lease`]).
//! - I2: every start of a computation resumes from the latest state the AC acknowledged:
//!   from the initial state only while the AC holds no LKGS of it, otherwise from exactly
//!   that LKGS ([`crate::checker::Checker::on_start`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pcxses_core::controller::{ComputationId, ComputationSpec, DeviceSpec, Placement};
use pcxses_core::device::{DeviceEvent, StopReason};
use pcxses_core::wire::StateMode;
use pcxses_core::{
    Controller, ControllerConfig, ControllerEvent, Device, DeviceConfig, Instant, LinkId,
    MemoryRepository, Output,
};

use crate::app::{encode_state, may_step, App, AppFault};
use crate::checker::{Checker, Counts, StartKind};
use crate::lease::{LeaseTracker, Sent};
use crate::memory_journal::{MemoryJournal, Stored};
use crate::net::{Faults, Net, Packet, SimRng};

/// The AC's address on the simulated network.
pub const AC: LinkId = LinkId(0);

/// A fault the simulation applies at a scheduled time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// The device's process dies (SIGKILL): state and memory gone.
    Crash(usize),
    /// A crashed or departed device starts again as a new incarnation.
    Restart(usize),
    /// The device freezes (SIGSTOP) for this many milliseconds; packets to it wait.
    Hang(usize, u64),
    /// Right after its next HELLO the device freezes for longer than its fence lease but
    /// shorter than its dead interval (halfway between the two): it fences itself when it
    /// wakes, while the AC, once the GOOD_MORNING that follows arrives in time, never
    /// declares it dead.
    FenceHang(usize),
    /// The device's process dies (SIGKILL) and starts again as a new incarnation this many
    /// milliseconds later.
    Reboot(usize, u64),
    /// The device is cut off from the AC for this many milliseconds.
    Partition(usize, u64),
    /// The device leaves with GOOD_BYE.
    Leave(usize),
    /// The AC is killed and restarted from its journal after this many milliseconds.
    AcRestart(u64),
}

/// How a simulation is set up.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed: everything else random derives from it.
    pub seed: u64,
    /// Number of devices; device `i` runs computation `comp{i}` natively.
    pub devices: usize,
    /// Whether devices fence themselves (and so whether two running copies are a bug).
    pub fencing: bool,
    /// The state mode the devices propose.
    pub mode: StateMode,
    /// Network faults during the chaos phase; the settle phase is clean.
    pub faults: Faults,
    /// Length of the chaos phase, milliseconds.
    pub chaos_ms: u64,
    /// Length of the settle phase, milliseconds.
    pub settle_ms: u64,
    /// Scheduled faults, with their times in milliseconds from the start.
    pub schedule: Vec<(u64, Action)>,
    /// Computations every device refuses to install (to exercise quarantine).
    pub refuse: Vec<String>,
    /// State size of each computation, by index (cycled).
    pub state_sizes: Vec<usize>,
    /// Object code size of each computation, by index (cycled).
    pub code_sizes: Vec<usize>,
    /// HELLO interval the devices propose.
    pub hello_ms: u32,
    /// How often each application updates each computation's state.
    pub tick_ms: u64,
    /// Pre-shared-key mode: every device has a key and seals its bottles.
    pub keyed: bool,
    /// The AC's journal replaces its changes with a snapshot beyond this many.
    pub compact_after: usize,
    /// A bug planted in every device's application, to show the checks catch it.
    pub app_fault: AppFault,
}

impl SimConfig {
    /// A clean two-phase run with no scheduled faults.
    pub fn new(seed: u64, devices: usize) -> SimConfig {
        SimConfig {
            seed,
            devices,
            fencing: true,
            mode: StateMode::InHello,
            faults: Faults::CLEAN,
            chaos_ms: 10_000,
            settle_ms: 10_000,
            schedule: Vec::new(),
            refuse: Vec::new(),
            state_sizes: vec![16],
            code_sizes: vec![2_000],
            hello_ms: 100,
            tick_ms: 70,
            keyed: false,
            compact_after: 16,
            app_fault: AppFault::None,
        }
    }

    /// A random configuration for `seed`: device count, mode, faults and a schedule of
    /// crashes, reboots, hangs (some past the fence lease), partitions, leaves and AC
    /// restarts.
    pub fn random(seed: u64) -> SimConfig {
        let mut rng = SimRng::new(seed);
        let devices = rng.range(3, 6) as usize;
        let mut cfg = SimConfig::new(seed, devices);
        cfg.mode = if rng.chance(0.5) {
            StateMode::InHello
        } else {
            StateMode::Separate
        };
        cfg.faults = Faults {
            loss: [0.0, 0.02, 0.1, 0.25][rng.range(0, 3) as usize],
            dup: [0.0, 0.05][rng.range(0, 1) as usize],
            delay_min_us: 50,
            delay_max_us: [500, 5_000, 30_000][rng.range(0, 2) as usize],
            tamper: [0.0, 0.0, 0.05][rng.range(0, 2) as usize],
        };
        cfg.hello_ms = [50, 100, 200][rng.range(0, 2) as usize];
        cfg.state_sizes = vec![16, 300, 3_000];
        cfg.code_sizes = vec![500, 5_000, 20_000];
        cfg.chaos_ms = 15_000;
        cfg.settle_ms = 20_000;
        let events = rng.range(1, 6);
        for _ in 0..events {
            let at = rng.range(1_000, cfg.chaos_ms - 2_000);
            let d = rng.range(0, devices as u64 - 1) as usize;
            let action = match rng.range(0, 11) {
                0..=1 => Action::Crash(d),
                // Back within the dead interval, mostly.
                2 => Action::Reboot(d, rng.range(1, 2 * u64::from(cfg.hello_ms))),
                3 => Action::Hang(d, rng.range(100, 4_000)),
                4 => Action::FenceHang(d),
                5..=6 => Action::Partition(d, rng.range(100, 4_000)),
                7 => Action::Leave(d),
                8 => Action::AcRestart(rng.range(10, 1_500)),
                _ => Action::Restart(d),
            };
            cfg.schedule.push((at, action));
        }
        if rng.chance(0.2) {
            cfg.refuse.push("comp0".into());
        }
        // Without fencing two copies may overlap for a while, but never at the end.
        cfg.fencing = !rng.chance(0.15);
        cfg.keyed = rng.chance(0.3);
        cfg.compact_after = [0, 16, 256, usize::MAX][rng.range(0, 3) as usize];
        cfg
    }
}

struct Node {
    name: String,
    device: Option<Device>,
    app: App,
    /// This incarnation's fence lease, from its traffic.
    tracker: LeaseTracker,
    timeout: Instant,
    hung_until: Option<Instant>,
    /// A [`Action::FenceHang`] waits for the device's next HELLO.
    hang_after_hello: bool,
    held: Vec<Packet>,
    partitioned_until: Instant,
    next_tick: Instant,
    /// Computations started here whose first step is still to come, with the index of
    /// their start in the run's list of starts.
    first_state: BTreeMap<String, usize>,
}

/// A running simulation.
pub struct Sim {
    cfg: SimConfig,
    rng: SimRng,
    now: Instant,
    ac_config: ControllerConfig,
    repo: MemoryRepository,
    ac: Option<Controller>,
    ac_timeout: Instant,
    /// When the AC comes back, while it is down.
    ac_down: Option<Instant>,
    /// What the AC's journal holds.
    journal: Arc<Mutex<Stored>>,
    nodes: Vec<Node>,
    net: Net,
    schedule: VecDeque<(Instant, Action)>,
    checker: Checker,
    log: VecDeque<String>,
    incarnations: u64,
    starts: Vec<Start>,
}

/// One start of a computation on a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    /// Virtual time of the start, milliseconds.
    pub at_ms: u64,
    /// The device, by index.
    pub device: usize,
    /// The computation.
    pub computation: String,
    /// What started it.
    pub how: StartKind,
    /// For an install, the device the AC moved the computation from.
    pub replaces: Option<String>,
    /// The count it started from.
    pub from: u64,
    /// The count of the latest state the AC had acknowledged then, if any.
    pub acknowledged: Option<u64>,
    /// The count of its first step on this device, once it took one.
    pub first_state: Option<u64>,
}

/// How a run ended well.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// What the checker counted.
    pub counts: Counts,
    /// Packets sent.
    pub packets: u64,
    /// Every start of a computation, in order.
    pub starts: Vec<Start>,
}

/// How a run failed: the violated invariant, when, the seed, and the last events.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The seed to replay.
    pub seed: u64,
    /// Virtual time of the violation, milliseconds.
    pub at_ms: u64,
    /// What was violated.
    pub what: String,
    /// The last protocol events before it.
    pub log: Vec<String>,
    /// The configuration that was run.
    pub config: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "seed {} at {} ms: {}", self.seed, self.at_ms, self.what)?;
        writeln!(
            f,
            "replay: PCXSES_SEEDS={} cargo test -p pcxses-tests --test simulation",
            self.seed
        )?;
        writeln!(f, "config: {}", self.config)?;
        for line in &self.log {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

const LOG_LINES: usize = 200;

/// How long past the settle phase a computation caught retrying after quarantine may
/// take to settle.
const RETRY_GRACE_MS: u64 = 30_000;

/// Device `i`'s pre-shared key in keyed runs.
fn key(i: usize) -> pcxses_core::psk::Psk {
    pcxses_core::psk::Psk([i as u8 ^ 0xa5; 32])
}

impl Sim {
    /// Sets up the AC, the devices, the repository and the schedule.
    pub fn new(cfg: SimConfig) -> Sim {
        let mut rng = SimRng::new(cfg.seed);
        let mut repo = MemoryRepository::default();
        let mut comps = Vec::new();
        let mut devices = Vec::new();
        for i in 0..cfg.devices {
            let code = format!("comp{i}.bin");
            let size = cfg.code_sizes[i % cfg.code_sizes.len()];
            repo.insert(code.clone(), (0..size).map(|b| (b * 7 + i) as u8).collect());
            comps.push(ComputationSpec::new(&format!("comp{i}"), &code));
            let mut spec = DeviceSpec::new(&format!("dev{i}"), &[&format!("comp{i}")]);
            spec.psk = cfg.keyed.then(|| key(i));
            devices.push(spec);
        }
        let mut ac_config = ControllerConfig::new(rng.next_u64(), devices, comps);
        ac_config.fencing = cfg.fencing;
        ac_config.rto = Duration::from_millis(50);
        ac_config.morph_timeout = Duration::from_secs(3);
        let now = Instant::from_millis(0);
        let ac = Controller::new(ac_config.clone(), repo.clone(), now).expect("valid config");
        let nodes = (0..cfg.devices)
            .map(|i| Node {
                name: format!("dev{i}"),
                device: None,
                app: App::new(cfg.app_fault),
                tracker: LeaseTracker::new(cfg.keyed),
                timeout: Instant::MAX,
                hung_until: None,
                hang_after_hello: false,
                held: Vec::new(),
                partitioned_until: now,
                next_tick: now,
                first_state: BTreeMap::new(),
            })
            .collect();
        let schedule = {
            let mut s: Vec<_> = cfg
                .schedule
                .iter()
                .map(|&(ms, a)| (Instant::from_millis(ms), a))
                .collect();
            s.sort_by_key(|(at, _)| *at);
            s.into()
        };
        // Computation `comp{i}` is native to device `dev{i}`.
        let checker = Checker::new(cfg.devices, (0..cfg.devices).collect());
        let mut sim = Sim {
            rng,
            now,
            ac_config,
            repo,
            ac: None,
            ac_timeout: now,
            ac_down: None,
            journal: Arc::default(),
            nodes,
            net: Net::default(),
            schedule,
            checker,
            log: VecDeque::new(),
            incarnations: 0,
            starts: Vec::new(),
            cfg,
        };
        sim.ac = Some(sim.journaled(ac));
        for i in 0..sim.nodes.len() {
            sim.boot(i);
        }
        sim
    }

    /// `ac` with a fresh journal, which becomes the one the simulation reads back.
    fn journaled(&mut self, ac: Controller) -> Controller {
        let (journal, stored) = MemoryJournal::start(&ac, self.cfg.compact_after);
        self.journal = stored;
        ac.with_journal(Box::new(journal))
    }

    /// The journal must describe exactly the AC it belongs to: restoring either gives the
    /// same placements, LKGS and sessions, and (without keys, whose counters a journal
    /// records only now and then) the same snapshot.
    fn check_journal(&self, ac: &Controller) -> Result<(), String> {
        let config = || self.ac_config.clone();
        let stored = self.journal.lock().map_err(|e| e.to_string())?.clone();
        let journal = stored
            .restore(config(), self.repo.clone(), self.now)
            .map_err(|e| format!("the journal does not restore: {e}"))?;
        let memory = Controller::new(config(), self.repo.clone(), self.now)
            .map_err(Into::into)
            .and_then(|fresh| fresh.restore(&ac.snapshot(), [], self.now))
            .map_err(|e| format!("the snapshot does not restore: {e}"))?;
        for c in 0..ac.computation_count() {
            let id = pcxses_core::controller::ComputationId(c as u32);
            if journal.placement(id) != memory.placement(id) || journal.lkgs(id) != memory.lkgs(id)
            {
                return Err(format!(
                    "the journal differs from the AC for {}",
                    ac.computation_name(id)
                ));
            }
        }
        for d in 0..ac.device_count() {
            let id = pcxses_core::controller::DeviceId(d as u32);
            if journal.session_of(id) != memory.session_of(id) {
                return Err(format!("the journal differs from the AC for dev{d}"));
            }
        }
        if !self.cfg.keyed && journal.snapshot() != memory.snapshot() {
            return Err("the journal's snapshot differs from the AC's".into());
        }
        Ok(())
    }

    /// Runs the chaos phase, heals every fault, runs the settle phase, and checks the
    /// final placement of every computation.
    pub fn run(mut self) -> Result<Report, Failure> {
        let chaos_end = Instant::from_millis(self.cfg.chaos_ms);
        let end = Instant::from_millis(self.cfg.chaos_ms + self.cfg.settle_ms);
        let result = self
            .run_until(chaos_end)
            .and_then(|()| {
                self.heal();
                self.run_until(end)
            })
            .and_then(|()| self.finish_retries())
            .and_then(|()| self.check_final());
        match result {
            Ok(()) => Ok(Report {
                counts: self.checker.counts,
                packets: self.net.sent,
                starts: self.starts,
            }),
            Err(what) => Err(Failure {
                seed: self.cfg.seed,
                at_ms: self.now.as_millis(),
                what,
                log: self.log.iter().cloned().collect(),
                config: format!("{:?}", self.cfg),
            }),
        }
    }

    /// The controller, while it is up.
    pub fn controller(&self) -> Option<&Controller> {
        self.ac.as_ref()
    }

    fn note(&mut self, line: String) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        self.log
            .push_back(format!("{:>7} ms {line}", self.now.as_millis()));
    }

    /// The AC retries a quarantined computation after a backoff: one caught in such a
    /// retry at the end of the settle phase runs on until it settles, for a while.
    fn finish_retries(&mut self) -> Result<(), String> {
        let limit = Instant::from_millis(self.now.as_millis() + RETRY_GRACE_MS);
        while self.now < limit && self.retrying() {
            let next = Instant::from_millis(self.now.as_millis() + 100);
            self.run_until(next)?;
        }
        Ok(())
    }

    /// Whether a computation quarantined before is being moved again.
    fn retrying(&self) -> bool {
        let Some(ac) = self.ac.as_ref() else {
            return false;
        };
        (0..ac.computation_count()).any(|c| {
            let id = ComputationId(c as u32);
            self.checker.was_quarantined(id)
                && matches!(
                    ac.placement(id),
                    Some(Placement::Migrating | Placement::Waiting)
                )
        })
    }

    fn run_until(&mut self, end: Instant) -> Result<(), String> {
        loop {
            let next = self.next_event().min(end);
            self.now = self.now.max(next);
            self.step()?;
            if next >= end {
                return Ok(());
            }
        }
    }

    fn next_event(&self) -> Instant {
        let mut t = self.net.next_at().unwrap_or(Instant::MAX);
        t = t.min(self.schedule.front().map_or(Instant::MAX, |(at, _)| *at));
        match &self.ac_down {
            Some(until) => t = t.min(*until),
            None => t = t.min(self.ac_timeout),
        }
        for n in &self.nodes {
            if n.device.is_none() {
                continue;
            }
            match n.hung_until {
                Some(until) => t = t.min(until),
                None => t = t.min(n.timeout).min(n.next_tick),
            }
        }
        t
    }

    fn step(&mut self) -> Result<(), String> {
        let now = self.now;
        while self.schedule.front().is_some_and(|(at, _)| *at <= now) {
            let (_, action) = self.schedule.pop_front().expect("checked");
            self.apply(action)?;
        }
        if self.ac_down.is_some_and(|until| until <= now) {
            self.restart_ac()?;
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].hung_until.is_some_and(|until| until <= now) {
                self.resume(i)?;
            }
        }
        while let Some(p) = self.net.pop_due(now) {
            self.deliver(p)?;
        }
        if self.ac.is_some() && self.ac_timeout <= now {
            if let Some(ac) = self.ac.as_mut() {
                ac.handle_timeout(now);
            }
            self.drain_ac()?;
        }
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            if n.device.is_none() || n.hung_until.is_some() {
                continue;
            }
            if n.timeout <= now {
                if let Some(d) = self.nodes[i].device.as_mut() {
                    d.handle_timeout(now);
                }
                self.drain_device(i)?;
            }
            // A device may have frozen just now (Action::FenceHang).
            if self.nodes[i].hung_until.is_none() && self.nodes[i].next_tick <= now {
                self.tick(i)?;
            }
        }
        self.check_copies()
    }

    fn boot(&mut self, i: usize) {
        self.incarnations += 1;
        let mut cfg = DeviceConfig::new(&self.nodes[i].name, self.rng.next_u64());
        cfg.mode = self.cfg.mode;
        cfg.hello = Duration::from_millis(self.cfg.hello_ms.into());
        cfg.dead = cfg.hello * 3;
        cfg.rto = Duration::from_millis(50);
        cfg.join_retry = Duration::from_millis(100);
        cfg.join_retry_max = Duration::from_secs(1);
        cfg.psk = self.cfg.keyed.then(|| key(i));
        let n = &mut self.nodes[i];
        n.device = Some(Device::new(cfg, self.now));
        n.app = App::new(self.cfg.app_fault);
        n.tracker = LeaseTracker::new(self.cfg.keyed);
        n.timeout = self.now;
        n.hung_until = None;
        n.hang_after_hello = false;
        n.held.clear();
        n.next_tick = self.now;
        n.first_state.clear();
    }

    /// Kills device `i`'s process: state and memory gone.
    fn crash(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.device = None;
        n.app = App::new(self.cfg.app_fault);
        n.held.clear();
        n.hung_until = None;
        n.hang_after_hello = false;
        n.first_state.clear();
    }

    /// Adds `action` to the schedule at `at`, after the actions already due then.
    fn schedule_at(&mut self, at: Instant, action: Action) {
        let pos = (self.schedule.iter())
            .position(|(t, _)| *t > at)
            .unwrap_or(self.schedule.len());
        self.schedule.insert(pos, (at, action));
    }

    fn apply(&mut self, action: Action) -> Result<(), String> {
        self.note(format!("fault {action:?}"));
        let now = self.now;
        match action {
            Action::Crash(i) => self.crash(i),
            Action::Reboot(i, ms) => {
                self.crash(i);
                self.schedule_at(
                    Instant::from_millis(now.as_millis() + ms),
                    Action::Restart(i),
                );
            }
            Action::FenceHang(i) => {
                if self.nodes[i].device.is_some() && self.nodes[i].hung_until.is_none() {
                    self.nodes[i].hang_after_hello = true;
                }
            }
            Action::Restart(i) => {
                if self.nodes[i].device.is_none() {
                    self.boot(i);
                }
            }
            Action::Hang(i, ms) => {
                if self.nodes[i].device.is_some() && self.nodes[i].hung_until.is_none() {
                    self.nodes[i].hung_until = Some(Instant::from_millis(now.as_millis() + ms));
                }
            }
            Action::Partition(i, ms) => {
                self.nodes[i].partitioned_until = Instant::from_millis(now.as_millis() + ms);
            }
            Action::Leave(i) => {
                // A frozen process does nothing, leaving included.
                if self.nodes[i].hung_until.is_some() {
                    return Ok(());
                }
                if let Some(d) = self.nodes[i].device.as_mut() {
                    d.leave(now);
                    self.drain_device(i)?;
                }
            }
            Action::AcRestart(ms) => {
                if let Some(ac) = self.ac.take() {
                    self.check_journal(&ac)?;
                    self.ac_down = Some(Instant::from_millis(now.as_millis() + ms));
                }
            }
        }
        Ok(())
    }

    fn restart_ac(&mut self) -> Result<(), String> {
        if self.ac_down.take().is_none() {
            return Ok(());
        }
        let stored = self.journal.lock().map_err(|e| e.to_string())?.clone();
        let ac = stored
            .restore(self.ac_config.clone(), self.repo.clone(), self.now)
            .map_err(|e| format!("restore failed: {e}"))?;
        self.note(format!(
            "AC restarted from its journal ({} changes after the snapshot)",
            stored.changes.len()
        ));
        self.ac = Some(self.journaled(ac));
        self.drain_ac()
    }

    /// Device `i` wakes from a freeze. Its protocol thread and its computation thread both
    /// wake, in either order: the application may step before the device has judged its
    /// lease (it checks the lease itself), or after.
    fn resume(&mut self, i: usize) -> Result<(), String> {
        let now = self.now;
        self.nodes[i].hung_until = None;
        if self.rng.chance(0.5) && self.nodes[i].next_tick <= now {
            let line = format!("{} wakes: the application runs first", self.nodes[i].name);
            self.note(line);
            self.tick(i)?;
        }
        if let Some(d) = self.nodes[i].device.as_mut() {
            d.handle_timeout(now);
        }
        self.drain_device(i)?;
        for p in std::mem::take(&mut self.nodes[i].held) {
            self.deliver(Packet { at: now, ..p })?;
        }
        Ok(())
    }

    /// Ends the chaos: a clean network, no partitions or hangs, the AC up, every crashed
    /// device restarted.
    fn heal(&mut self) {
        self.note("heal".into());
        self.cfg.faults = Faults::CLEAN;
        self.schedule.clear();
        for i in 0..self.nodes.len() {
            self.nodes[i].partitioned_until = self.now;
            self.nodes[i].hang_after_hello = false;
            if self.nodes[i].hung_until.is_some() {
                self.nodes[i].hung_until = Some(self.now);
            }
            if self.nodes[i].device.is_none() {
                self.boot(i);
            }
        }
        if let Some(until) = self.ac_down.as_mut() {
            *until = self.now;
        }
    }

    fn cut_off(&self, link: LinkId) -> bool {
        link != AC && self.nodes[link.0 as usize - 1].partitioned_until > self.now
    }

    fn transmit(&mut self, from: LinkId, to: LinkId, bytes: &[u8]) {
        if self.cut_off(from) || self.cut_off(to) {
            return;
        }
        let faults = self.cfg.faults;
        self.net
            .send(&mut self.rng, &faults, self.now, from, to, bytes);
    }

    fn deliver(&mut self, p: Packet) -> Result<(), String> {
        let now = self.now;
        if p.to == AC {
            if let Some(ac) = self.ac.as_mut() {
                let _ = ac.handle_receive(now, p.from, &p.bytes, None);
                self.drain_ac()?;
            }
            return Ok(());
        }
        let i = p.to.0 as usize - 1;
        let n = &mut self.nodes[i];
        if n.device.is_none() {
            return Ok(());
        }
        if n.hung_until.is_some() {
            n.held.push(p);
            return Ok(());
        }
        n.tracker.on_delivered(now, &p.bytes);
        if let Some(d) = n.device.as_mut() {
            let _ = d.handle_receive(now, &p.bytes);
        }
        self.drain_device(i)
    }

    fn drain_ac(&mut self) -> Result<(), String> {
        let mut sends = Vec::new();
        let mut events = Vec::new();
        let Some(ac) = self.ac.as_mut() else {
            return Ok(());
        };
        loop {
            match ac.poll_output() {
                Output::Transmit(t) => sends.push((t.to, t.bytes.to_vec())),
                Output::Event(e) => events.push(e),
                Output::Timeout(t) => {
                    self.ac_timeout = t;
                    break;
                }
            }
        }
        for (to, bytes) in sends {
            self.transmit(AC, to, &bytes);
        }
        for e in events {
            let ac = self.ac.as_ref().expect("up");
            if !matches!(e, ControllerEvent::StateStored { .. }) {
                let line = describe(&e, ac);
                self.note(line);
            }
            let ac = self.ac.as_ref().expect("up");
            self.checker.on_ac_event(&e, ac)?;
        }
        Ok(())
    }

    fn drain_device(&mut self, i: usize) -> Result<(), String> {
        let link = LinkId(i as u64 + 1);
        let mut hello = false;
        loop {
            let mut sends = Vec::new();
            let mut events = Vec::new();
            let Some(d) = self.nodes[i].device.as_mut() else {
                return Ok(());
            };
            loop {
                match d.poll_output() {
                    Output::Transmit(t) => sends.push((t.to, t.bytes.to_vec())),
                    Output::Event(e) => events.push(e),
                    Output::Timeout(t) => {
                        self.nodes[i].timeout = t;
                        break;
                    }
                }
            }
            for (to, bytes) in sends {
                let sent = self.nodes[i].tracker.on_sent(self.now, &bytes);
                hello |= sent == Some(Sent::Hello);
                self.transmit(link, to, &bytes);
            }
            if events.is_empty() {
                break;
            }
            for e in events {
                self.on_device_event(i, e)?;
            }
        }
        if hello && self.nodes[i].hang_after_hello {
            self.freeze_past_fence(i);
        }
        Ok(())
    }

    /// [`Action::FenceHang`]: device `i` freezes halfway between its fence interval and
    /// its dead interval (without fencing, for seven eighths of the dead interval).
    fn freeze_past_fence(&mut self, i: usize) {
        let now = self.now;
        let n = &mut self.nodes[i];
        n.hang_after_hello = false;
        let hello = Duration::from_millis(u64::from(self.cfg.hello_ms));
        let (fence, dead) = n.tracker.intervals().unwrap_or((None, hello * 3));
        let fence = fence.unwrap_or(dead - dead / 4);
        let until = now + fence + (dead.saturating_sub(fence)) / 2;
        n.hung_until = Some(until);
        let line = format!(
            "{} freezes after its HELLO until {} ms (fence {} ms, dead {} ms)",
            n.name,
            until.as_millis(),
            fence.as_millis(),
            dead.as_millis()
        );
        self.note(line);
    }

    fn on_device_event(&mut self, i: usize, e: DeviceEvent) -> Result<(), String> {
        let now = self.now;
        let name = self.nodes[i].name.clone();
        match e {
            DeviceEvent::Joined { session, run, .. } => {
                self.note(format!("{name} joined as {session}, runs {run:?}"));
                for c in run {
                    if self.nodes[i].app.running.contains_key(c.as_str()) {
                        return Err(format!("{name} told to start {c}, which it runs"));
                    }
                    let count = self.nodes[i].app.start(&c);
                    (self.nodes[i].tracker.on_told(now, session, &c))
                        .map_err(|e| format!("{e} ({name})"))?;
                    self.started(i, &c, (StartKind::Joined, None), count)?;
                }
            }
            DeviceEvent::Stop {
                computation,
                reason,
            } => {
                self.note(format!("{name} stops {computation}: {reason:?}"));
                if !self.nodes[i].app.stop(&computation) {
                    return Err(format!(
                        "{name} told to stop {computation}, which it does not run"
                    ));
                }
                self.nodes[i].tracker.on_stopped(&computation);
                self.nodes[i].first_state.remove(computation.as_str());
                if reason == StopReason::Fenced {
                    self.checker.counts.fenced += 1;
                }
            }
            DeviceEvent::Install(inst) => {
                let comp = self
                    .ac_config
                    .computations
                    .iter()
                    .position(|c| c.name == inst.computation);
                let comp = comp.ok_or("install of an unknown computation")?;
                self.checker.on_install(
                    pcxses_core::controller::ComputationId(comp as u32),
                    inst.lkgs(),
                )?;
                let code = &self.ac_config.computations[comp].objects[0].id;
                if self.repo_bytes(code) != inst.objects().next().map(|(_, bytes)| bytes) {
                    return Err("installed code differs from the repository".into());
                }
                let refuse = self.cfg.refuse.iter().any(|c| *c == inst.computation);
                self.note(format!(
                    "{name} installs {} (refuse: {refuse})",
                    inst.computation
                ));
                if !refuse {
                    let c = inst.computation.as_str();
                    if self.nodes[i].app.running.contains_key(c) {
                        return Err(format!("{name} installs {c} twice"));
                    }
                    let session = (self.nodes[i].device.as_ref())
                        .and_then(Device::session)
                        .ok_or_else(|| format!("{name} installs {c} outside a session"))?;
                    let count = self.nodes[i].app.restore(c, inst.lkgs());
                    (self.nodes[i].tracker.on_told(now, session, c))
                        .map_err(|e| format!("{e} ({name})"))?;
                    let how = (StartKind::Install, Some(inst.replaces.into()));
                    self.started(i, c, how, count)?;
                }
                if let Some(d) = self.nodes[i].device.as_mut() {
                    d.answer_install(now, inst.id, !refuse)
                        .map_err(|e| e.to_string())?;
                }
            }
            DeviceEvent::MorphRefused { morph, reason } => {
                self.note(format!("{name} refused MORPH {morph}: {reason:?}"));
            }
            DeviceEvent::Left => self.note(format!("{name} left")),
            _ => {}
        }
        Ok(())
    }

    /// Device `i`'s application started `computation` from `count` (how, and for an
    /// install the device it replaces): recorded, and checked against the state the AC
    /// acknowledged (I2).
    fn started(
        &mut self,
        i: usize,
        computation: &str,
        (how, replaces): (StartKind, Option<String>),
        count: u64,
    ) -> Result<(), String> {
        let id = (self.ac_config.computations.iter())
            .position(|c| c.name == computation)
            .map(|c| ComputationId(c as u32))
            .ok_or("start of an unknown computation")?;
        let acknowledged = self.checker.acknowledged(id);
        self.note(format!(
            "{} starts {computation} at count {count} ({how:?}; the AC acknowledged {acknowledged:?})",
            self.nodes[i].name
        ));
        self.nodes[i]
            .first_state
            .insert(computation.into(), self.starts.len());
        self.starts.push(Start {
            at_ms: self.now.as_millis(),
            device: i,
            computation: computation.into(),
            how,
            replaces,
            from: count,
            acknowledged,
            first_state: None,
        });
        let name = self.nodes[i].name.clone();
        (self.checker.on_start(id, computation, how, count)).map_err(|e| format!("{e} ({name})"))
    }

    fn repo_bytes(&self, id: &str) -> Option<&[u8]> {
        pcxses_core::Repository::object(&self.repo, id)
    }

    /// The application's timer: each running computation takes one step, if the device's
    /// fence lease, read before the step, covers it. Every step taken is checked against
    /// the lease tracked from the traffic (I1).
    fn tick(&mut self, i: usize) -> Result<(), String> {
        let now = self.now;
        let jitter = self.rng.range(0, self.cfg.tick_ms / 2);
        let Sim {
            nodes,
            cfg,
            checker,
            starts,
            ..
        } = self;
        let n = &mut nodes[i];
        n.next_tick = Instant::from_millis(now.as_millis() + cfg.tick_ms + jitter);
        let Some(d) = n.device.as_mut() else {
            return Ok(());
        };
        for (name, count) in n.app.running.iter_mut() {
            if !may_step(n.app.fault, now, d.lease_until()) {
                checker.counts.skipped += 1;
                continue;
            }
            (n.tracker.on_step(now, name)).map_err(|e| format!("{e} ({})", n.name))?;
            checker.counts.steps += 1;
            *count += 1;
            if let Some(k) = n.first_state.remove(name) {
                starts[k].first_state = Some(*count);
            }
            let idx: usize = name.trim_start_matches("comp").parse().unwrap_or(0);
            let size = cfg.state_sizes[idx % cfg.state_sizes.len()];
            d.set_state(now, name, &encode_state(name, *count, size))
                .map_err(|e| format!("set_state {name}: {e}"))?;
        }
        self.drain_device(i)
    }

    /// With fencing on, no computation runs on two live devices at once. A frozen device
    /// executes nothing, so it runs nothing until it resumes (and first checks its lease).
    fn check_copies(&self) -> Result<(), String> {
        if !self.cfg.fencing {
            return Ok(());
        }
        for c in 0..self.cfg.devices {
            let name = format!("comp{c}");
            let hosts: Vec<&str> = self
                .nodes
                .iter()
                .filter(|n| {
                    n.device.is_some()
                        && n.hung_until.is_none()
                        && n.app.running.contains_key(&name)
                })
                .map(|n| n.name.as_str())
                .collect();
            if hosts.len() > 1 {
                return Err(format!("{name} runs on {hosts:?} at once"));
            }
        }
        Ok(())
    }

    /// Whether computation `c`'s home device (`dev{c}`) is in a session.
    fn home_in_session(&self, c: usize) -> bool {
        self.nodes
            .get(c)
            .and_then(|n| n.device.as_ref())
            .is_some_and(|d| d.session().is_some())
    }

    /// After the settle phase every computation runs on exactly one live device — the one
    /// the AC names — or the AC reports why not (quarantined, orphaned, stopped after
    /// GOOD_BYE, or unplaced because its home device left before it ever joined) and it
    /// runs nowhere.
    fn check_final(&self) -> Result<(), String> {
        let ac = self.ac.as_ref().ok_or("AC down at the end")?;
        self.check_journal(ac)?;
        for c in 0..ac.computation_count() {
            let id = pcxses_core::controller::ComputationId(c as u32);
            let name = ac.computation_name(id).to_string();
            let hosts: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| self.nodes[i].app.running.contains_key(&name))
                .collect();
            match ac.placement(id) {
                Some(Placement::Running(d)) => {
                    if hosts != [d.0 as usize] {
                        return Err(format!("{name}: AC says dev{}, running on {hosts:?}", d.0));
                    }
                }
                Some(Placement::Quarantined | Placement::Orphaned | Placement::Stopped) => {
                    if !hosts.is_empty() {
                        return Err(format!("{name} not placed but running on {hosts:?}"));
                    }
                }
                Some(Placement::Unplaced) if !self.home_in_session(c) => {
                    if !hosts.is_empty() {
                        return Err(format!("{name} unplaced but running on {hosts:?}"));
                    }
                }
                other => return Err(format!("{name} unsettled at the end: {other:?}")),
            }
        }
        Ok(())
    }
}

fn describe(e: &ControllerEvent, ac: &Controller) -> String {
    use ControllerEvent as E;
    let d = |id| ac.device_name(id).to_string();
    let c = |id| ac.computation_name(id).to_string();
    match e {
        E::DeviceJoined {
            device, session, ..
        } => format!("AC: {} joined as {session}", d(*device)),
        E::DeviceLeft { device, .. } => format!("AC: {} left", d(*device)),
        E::DeviceFailed { device, .. } => format!("AC: {} failed", d(*device)),
        E::StateStored {
            computation,
            version,
            ..
        } => format!("AC: stored {} v{version}", c(*computation)),
        E::ComputationStopped { computation, .. } => format!("AC: {} stopped", c(*computation)),
        E::MigrationStarted {
            computation,
            to,
            attempt,
            ..
        } => {
            format!(
                "AC: MORPH {} -> {} (attempt {attempt})",
                c(*computation),
                d(*to)
            )
        }
        E::MigrationCompleted {
            computation, to, ..
        } => format!("AC: {} now on {}", c(*computation), d(*to)),
        E::MigrationFailed {
            computation,
            to,
            reason,
            ..
        } => {
            format!(
                "AC: MORPH {} -> {} failed: {reason:?}",
                c(*computation),
                d(*to)
            )
        }
        E::Quarantined { computation, .. } => format!("AC: {} quarantined", c(*computation)),
        E::Orphaned { computation, .. } => format!("AC: {} orphaned", c(*computation)),
        other => format!("AC: {other:?}"),
    }
}
