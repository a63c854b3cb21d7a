//! One AC and two or three devices, connected in memory, driven by a [`Script`], with the
//! invariants checked after every step.

use std::collections::VecDeque;
use std::time::Duration;

use pcxses_core::controller::{ComputationId, ComputationSpec, DeviceId, DeviceSpec};
use pcxses_core::device::InstallId;
use pcxses_core::psk::{Direction, Psk};
use pcxses_core::wire::StateMode;
use pcxses_core::{
    Controller, ControllerConfig, DeviceConfig, DeviceEvent, Instant, Limits, LinkId,
    MemoryRepository, Repository,
};

use crate::forge::{self, Attacker};
use crate::invariants::{self, AcPrint, DevicePrint};
use crate::script::{StatePick, Step, Target};
use crate::twin::{AcOut, AcTwins, Out, Twins};

/// Steps run per input at most.
pub const MAX_STEPS: usize = 2_000;
/// Times a machine is woken per input at most; beyond, time jumps (the AC sees a stall).
const MAX_WAKES: u32 = 10_000;
/// Bottles in flight at most; beyond, the oldest is lost.
const MAX_IN_FLIGHT: usize = 1_024;
/// Delivered bottles kept for replaying.
const HISTORY: usize = 64;
/// Installs an application keeps waiting.
const PENDING: usize = 16;
/// Longest a bottle takes on a clean network, milliseconds.
const CLEAN_DELAY_MS: u64 = 50;
/// A clean network for this long lets every device join, whatever happened before: join
/// retries back off to 8 s, ±50%.
const SETTLE_MS: u64 = 30_000;
/// Largest state the machines accept: small, so the snapshot bound means something.
const MAX_STATE: u32 = 4_096;

/// The AC's link.
const AC: LinkId = LinkId(0);
/// Links of strangers start here.
const STRANGERS: u64 = 100;

#[derive(Clone, Debug)]
struct Packet {
    from: LinkId,
    to: LinkId,
    bytes: Vec<u8>,
}

struct Node {
    cfg: DeviceConfig,
    device: Option<Twins>,
    /// The device said it left: it may start again.
    left: bool,
    wake: Instant,
    pending: Vec<InstallId>,
}

/// Where injected or delivered bytes come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The network: a machine sent them.
    Network,
    /// An attacker made them up; an accepted one is `trusted` if it could break the
    /// protocol's guarantees by design (unauthenticated mode, or a key holder).
    Attacker { trusted: bool },
}

/// The area under test.
pub struct World {
    keyed: bool,
    auto_install: bool,
    now: Instant,
    config: ControllerConfig,
    repo: MemoryRepository,
    ac: AcTwins,
    ac_wake: Instant,
    nodes: Vec<Node>,
    in_flight: VecDeque<Packet>,
    history: VecDeque<Packet>,
    attacker: Attacker,
    /// Every state an application set, per computation.
    states: Vec<Vec<Vec<u8>>>,
    computations: Vec<String>,
    /// An attacker's bottle was accepted that the protocol does not claim to withstand in
    /// this mode: from then on only the invariants that hold against anyone are checked.
    tainted: bool,
    wakes: u32,
    /// Milliseconds the network has been clean for: every bottle delivered within
    /// [`CLEAN_DELAY_MS`], no attacker, no fault, no command but the applications'.
    clean_ms: u64,
    incarnations: u64,
}

/// Puts `p` in flight; beyond [`MAX_IN_FLIGHT`] the oldest bottle is lost.
fn send(in_flight: &mut VecDeque<Packet>, p: Packet) {
    if in_flight.len() == MAX_IN_FLIGHT {
        in_flight.pop_front();
    }
    in_flight.push_back(p);
}

/// Device `i`'s pre-shared key in keyed runs.
fn psk_of(i: usize) -> Psk {
    Psk([i as u8 ^ 0xa5; 32])
}

impl World {
    /// An area of `devices` devices, each running `comp{i}`, all keyed or none.
    pub fn new(keyed: bool, devices: usize, split: bool, auto_install: bool) -> World {
        let now = Instant::from_millis(1);
        let limits = Limits {
            max_state: MAX_STATE,
            ..Limits::DEFAULT
        };
        let mut repo = MemoryRepository::default();
        let mut specs = Vec::new();
        let mut comps = Vec::new();
        let mut nodes = Vec::new();
        for i in 0..devices {
            let code = format!("code{i}");
            repo.insert(code.clone(), vec![i as u8 + 1; 300 + 700 * i]);
            comps.push(ComputationSpec::new(&format!("comp{i}"), &code));
            let name = format!("dev{i}");
            let mut spec = DeviceSpec::new(&name, &[&format!("comp{i}")]);
            spec.psk = keyed.then(|| psk_of(i));
            specs.push(spec);
            let mut cfg = DeviceConfig::new(&name, 0);
            cfg.hello = Duration::from_millis(100);
            cfg.dead = Duration::from_millis(300);
            cfg.rto = Duration::from_millis(50);
            cfg.mode = if split { StateMode::Separate } else { StateMode::InHello };
            cfg.limits = limits;
            cfg.psk = keyed.then(|| psk_of(i));
            nodes.push(Node {
                cfg,
                device: None,
                left: false,
                wake: now,
                pending: Vec::new(),
            });
        }
        let mut config = ControllerConfig::new(0x5eed, specs, comps);
        config.limits = limits;
        config.rto = Duration::from_millis(50);
        config.morph_timeout = Duration::from_secs(2);
        config.restart_grace = Duration::from_secs(1);
        let computations: Vec<String> =
            config.computations.iter().map(|c| c.name.clone()).collect();
        let device_names = config.devices.iter().map(|d| d.name.clone()).collect();
        let ac = AcTwins::new(&config, &repo, now);
        let mut world = World {
            keyed,
            auto_install,
            now,
            ac,
            ac_wake: now,
            repo,
            nodes,
            in_flight: VecDeque::new(),
            history: VecDeque::new(),
            attacker: Attacker::new(device_names, computations.clone()),
            states: vec![Vec::new(); computations.len()],
            computations,
            config,
            tainted: false,
            wakes: 0,
            clean_ms: 0,
            incarnations: 0,
        };
        for i in 0..devices {
            world.boot(i);
        }
        world
    }

    /// Whether an attacker's bottle was accepted that this mode does not claim to withstand:
    /// from then on only the invariants that hold against anyone are checked.
    pub fn tainted(&self) -> bool {
        self.tainted
    }

    /// Devices in a session now.
    pub fn joined(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| {
                n.device
                    .as_ref()
                    .is_some_and(|d| d.device().session().is_some())
            })
            .count()
    }

    /// The AC.
    pub fn controller(&self) -> &Controller {
        self.ac.controller()
    }

    fn boot(&mut self, i: usize) {
        self.incarnations += 1;
        let n = &mut self.nodes[i];
        n.cfg.seed = self.incarnations.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        n.device = Some(Twins::new(&n.cfg, self.now));
        n.left = false;
        n.wake = self.now;
        n.pending.clear();
    }

    fn node(&self, i: u8) -> usize {
        usize::from(i) % self.nodes.len()
    }

    /// Runs one step, then checks every invariant.
    pub fn step(&mut self, step: &Step) -> Result<(), String> {
        let now = self.now;
        self.clean_ms = match step {
            Step::Run { rounds, ms } if ms % 1_000 <= CLEAN_DELAY_MS as u16 => {
                self.clean_ms + u64::from(rounds % 16 + 1) * u64::from(ms % 1_000)
            }
            Step::SetState { .. } | Step::AnswerInstall { .. } => self.clean_ms,
            _ => 0,
        };
        match step {
            Step::Run { rounds, ms } => {
                for _ in 0..=rounds % 16 {
                    for p in std::mem::take(&mut self.in_flight) {
                        self.deliver(p)?;
                    }
                    self.advance(u64::from(ms % 1_000))?;
                }
            }
            Step::Deliver(k) => {
                if let Some(p) = self.take(*k) {
                    self.deliver(p)?;
                }
            }
            Step::Drop(k) => {
                self.take(*k);
            }
            Step::Duplicate(k) => {
                if !self.in_flight.is_empty() {
                    let p = self.in_flight[usize::from(*k) % self.in_flight.len()].clone();
                    self.deliver(p)?;
                }
            }
            Step::Replay(k) => {
                if !self.history.is_empty() {
                    let p = self.history
                        [self.history.len() - 1 - usize::from(*k) % self.history.len()]
                    .clone();
                    self.deliver(p)?;
                }
            }
            Step::Advance(ms) => self.advance(u64::from(*ms))?,
            Step::Raw { to, bytes } => {
                let trusted = !self.keyed;
                self.inject(*to, bytes, Source::Attacker { trusted })?;
            }
            Step::Forge { to, bottle, seal } => {
                let dir = match to {
                    Target::Device(_) => Direction::ToDevice,
                    _ => Direction::ToAc,
                };
                let bytes = self.attacker.forge(bottle, *seal, dir);
                let trusted = !self.keyed || self.attacker.holds_key(*seal);
                self.inject(*to, &bytes, Source::Attacker { trusted })?;
            }
            Step::SetState {
                device,
                computation,
                state,
            } => {
                let i = self.node(*device);
                let c = usize::from(*computation) % self.computations.len();
                let bytes = match state {
                    StatePick::Bytes(b) => b.clone(),
                    StatePick::Large { len, fill } => vec![*fill; usize::from(*len)],
                };
                let name = &self.computations[c];
                if let Some(d) = self.nodes[i].device.as_mut() {
                    if d.set_state(now, name, &bytes)?.is_ok() && !self.states[c].contains(&bytes) {
                        self.states[c].push(bytes);
                    }
                    self.drain_device(i)?;
                }
            }
            Step::Leave(d) => {
                let i = self.node(*d);
                if let Some(dev) = self.nodes[i].device.as_mut() {
                    dev.leave(now);
                    self.drain_device(i)?;
                }
            }
            Step::Crash(d) => {
                let i = self.node(*d);
                self.nodes[i].device = None;
                self.nodes[i].pending.clear();
            }
            Step::Restart(d) => {
                let i = self.node(*d);
                if self.nodes[i].device.is_none() || self.nodes[i].left {
                    self.boot(i);
                    self.wake_device(i)?;
                }
            }
            Step::AnswerInstall {
                device,
                which,
                started,
            } => {
                let i = self.node(*device);
                let n = &mut self.nodes[i];
                if !n.pending.is_empty() {
                    let id = n.pending.remove(usize::from(*which) % n.pending.len());
                    if let Some(d) = n.device.as_mut() {
                        let _ = d.answer_install(now, id, *started)?;
                        self.drain_device(i)?;
                    }
                }
            }
            Step::Release(c) => {
                let c = u32::from(*c) % self.computations.len() as u32;
                let _ = self.ac.release(now, ComputationId(c))?;
                self.drain_ac()?;
            }
            Step::Dismiss(d) => {
                let d = self.node(*d) as u32;
                let _ = self.ac.dismiss(now, DeviceId(d))?;
                self.drain_ac()?;
            }
            Step::AcRestart => {
                self.ac.restart(&self.config, &self.repo, now)?;
                self.ac_wake = now;
                self.wake_ac()?;
            }
        }
        self.check()
    }

    fn take(&mut self, k: u8) -> Option<Packet> {
        if self.in_flight.is_empty() {
            return None;
        }
        let at = usize::from(k) % self.in_flight.len();
        self.in_flight.remove(at)
    }

    /// Lets `ms` pass, waking each machine at every deadline it asked for: devices first,
    /// since a device that must fence does so before the AC acts on the same instant.
    fn advance(&mut self, ms: u64) -> Result<(), String> {
        let end = Instant::from_millis(self.now.as_millis() + ms);
        loop {
            let next = self
                .nodes
                .iter()
                .filter(|n| n.device.is_some())
                .map(|n| n.wake)
                .fold(self.ac_wake, Instant::min)
                .min(end);
            self.wakes += 1;
            self.now = if self.wakes > MAX_WAKES {
                end
            } else {
                self.now.max(next)
            };
            for i in 0..self.nodes.len() {
                self.wake_device(i)?;
            }
            self.wake_ac()?;
            if self.now >= end {
                return Ok(());
            }
        }
    }

    fn wake_device(&mut self, i: usize) -> Result<(), String> {
        let now = self.now;
        let n = &mut self.nodes[i];
        match n.device.as_mut() {
            Some(d) if n.wake <= now => {
                d.timeout(now);
                self.drain_device(i).map(drop)
            }
            _ => Ok(()),
        }
    }

    fn wake_ac(&mut self) -> Result<(), String> {
        if self.ac_wake <= self.now {
            self.ac.timeout(self.now);
            self.drain_ac()?;
        }
        Ok(())
    }

    fn deliver(&mut self, p: Packet) -> Result<(), String> {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(p.clone());
        if p.to == AC {
            self.receive_at_ac(p.from, &p.bytes, Source::Network)
        } else {
            self.receive_at_device(p.to.0 as usize - 1, &p.bytes, Source::Network)
        }
    }

    fn inject(&mut self, to: Target, bytes: &[u8], source: Source) -> Result<(), String> {
        match to {
            Target::AcFromDevice(d) => {
                let link = LinkId(self.node(d) as u64 + 1);
                self.receive_at_ac(link, bytes, source)
            }
            Target::AcFromStranger(s) => {
                self.receive_at_ac(LinkId(STRANGERS + u64::from(s)), bytes, source)
            }
            Target::Device(d) => self.receive_at_device(self.node(d), bytes, source),
        }
    }

    /// Whether bytes from `source` are sealed with a session's real key: a machine may
    /// then answer a refusal in kind, which moves its seal counters.
    fn authentic(&self, source: Source) -> bool {
        self.keyed
            && match source {
                Source::Network => true,
                Source::Attacker { trusted } => trusted,
            }
    }

    fn receive_at_ac(&mut self, from: LinkId, bytes: &[u8], source: Source) -> Result<(), String> {
        let now = self.now;
        // Timers that are due run first, so that the bottle alone is judged.
        self.wake_ac()?;
        let authentic = self.authentic(source);
        let ac = self.ac.controller();
        let before = AcPrint::of(ac, authentic);
        let rejected = invariants::refusals(ac.stats());
        let skippable = source != Source::Network && !authentic;
        let result = self.ac.receive(now, from, bytes, skippable)?;
        if result.is_ok() && source == (Source::Attacker { trusted: true }) {
            self.tainted = true;
        }
        let ac = self.ac.controller();
        let after = AcPrint::of(ac, authentic);
        let rejected_after = invariants::refusals(ac.stats());
        let events = self.drain_ac()?;
        invariants::check_answer(
            "AC",
            result.is_err(),
            (&before, rejected),
            (&after, rejected_after),
            events,
            forge::riders(bytes),
        )
    }

    fn receive_at_device(&mut self, i: usize, bytes: &[u8], source: Source) -> Result<(), String> {
        let now = self.now;
        self.wake_device(i)?;
        let skippable = source != Source::Network && !self.authentic(source);
        let Some(d) = self.nodes[i].device.as_mut() else {
            return Ok(());
        };
        let before = DevicePrint::of(d.device());
        let rejected = d.device().stats().rejected();
        let result = d.receive(now, AC, bytes, skippable)?;
        let after = DevicePrint::of(d.device());
        let rejected_after = d.device().stats().rejected();
        if result.is_ok() && source == (Source::Attacker { trusted: true }) {
            self.tainted = true;
        }
        let events = self.drain_device(i)?;
        let who = format!("dev{i}");
        invariants::check_answer(
            &who,
            result.is_err(),
            (&before, rejected),
            (&after, rejected_after),
            events,
            forge::riders(bytes),
        )
    }

    /// Drains the AC: bottles to devices go in flight, the rest only teach the attacker.
    /// Returns how many events it raised.
    fn drain_ac(&mut self) -> Result<usize, String> {
        let mut events = 0;
        for out in self.ac.drain()? {
            match out {
                AcOut::Transmit(to, bytes) => {
                    let device = (1..=self.nodes.len() as u64).contains(&to.0);
                    let psk = device
                        .then(|| self.nodes[to.0 as usize - 1].cfg.psk.as_ref())
                        .flatten();
                    self.attacker.observe(&bytes, psk);
                    if device {
                        send(
                            &mut self.in_flight,
                            Packet {
                                from: AC,
                                to,
                                bytes,
                            },
                        );
                    }
                }
                AcOut::Event(_) => events += 1,
                AcOut::Timeout(t) => self.ac_wake = t,
            }
        }
        Ok(events)
    }

    /// Drains device `i` and acts as its application. Returns how many events it raised
    /// before the application answered any.
    fn drain_device(&mut self, i: usize) -> Result<usize, String> {
        let link = LinkId(i as u64 + 1);
        let mut first = None;
        loop {
            let n = &mut self.nodes[i];
            let Some(d) = n.device.as_mut() else {
                return Ok(first.unwrap_or(0));
            };
            let mut events = Vec::new();
            for out in d.drain()? {
                match out {
                    Out::Transmit(to, bytes) => {
                        self.attacker.observe(&bytes, n.cfg.psk.as_ref());
                        send(
                            &mut self.in_flight,
                            Packet {
                                from: link,
                                to,
                                bytes,
                            },
                        );
                    }
                    Out::Event(e) => events.push(e),
                    Out::Timeout(t) => n.wake = t,
                }
            }
            first.get_or_insert(events.len());
            if events.is_empty() {
                return Ok(first.unwrap_or(0));
            }
            for e in events {
                self.on_device_event(i, e)?;
            }
        }
    }

    fn on_device_event(&mut self, i: usize, e: DeviceEvent) -> Result<(), String> {
        match e {
            DeviceEvent::Install(inst) => {
                if !self.tainted {
                    self.check_install(&inst)?;
                }
                let n = &mut self.nodes[i];
                if self.auto_install {
                    if let Some(d) = n.device.as_mut() {
                        d.answer_install(self.now, inst.id, true)?
                            .map_err(|e| format!("answering an install just offered: {e}"))?;
                    }
                } else if n.pending.len() < PENDING {
                    n.pending.push(inst.id);
                }
            }
            DeviceEvent::Left => self.nodes[i].left = true,
            _ => {}
        }
        Ok(())
    }

    /// An install carries the computation's objects from the repository and a state its
    /// application set.
    fn check_install(&self, inst: &pcxses_core::device::Install) -> Result<(), String> {
        let c = self
            .config
            .computations
            .iter()
            .position(|c| c.name == inst.computation)
            .ok_or_else(|| format!("install of unknown computation {}", inst.computation))?;
        let spec = &self.config.computations[c];
        let objects_ok = inst.objects.len() == spec.objects.len()
            && inst
                .objects()
                .zip(&spec.objects)
                .all(|((o, bytes), s)| o.id == s.id && Some(bytes) == self.repo.object(&s.id));
        if !objects_ok {
            return Err(format!(
                "install of {}: objects differ from the repository",
                inst.computation
            ));
        }
        let lkgs = inst.lkgs();
        if !lkgs.is_empty() && !self.states[c].iter().any(|s| s[..] == *lkgs) {
            return Err(format!(
                "install of {} with a state ({} bytes) no device set",
                inst.computation,
                lkgs.len()
            ));
        }
        Ok(())
    }

    /// The invariants that hold after every step.
    fn check(&self) -> Result<(), String> {
        self.ac.check_snapshots()?;
        invariants::check_snapshot_bound(self.ac.controller(), &self.config)?;
        if self.tainted {
            return Ok(());
        }
        let devices = self
            .nodes
            .iter()
            .filter_map(|n| n.device.as_ref().map(Twins::device));
        invariants::check_one_copy(devices, &self.computations)?;
        invariants::check_lkgs(self.ac.controller(), &self.states)?;
        if self.clean_ms >= SETTLE_MS && self.wakes <= MAX_WAKES {
            self.check_settled()?;
        }
        Ok(())
    }

    /// After a while of a clean network every device that runs and has not left is in a
    /// session, the one the AC holds for it: nothing an attacker did before keeps it out.
    fn check_settled(&self) -> Result<(), String> {
        for (i, n) in self.nodes.iter().enumerate() {
            let Some(d) = n.device.as_ref().map(Twins::device).filter(|_| !n.left) else {
                continue;
            };
            let at_ac = self.ac.controller().session_of(DeviceId(i as u32));
            if d.session().is_none() || d.session() != at_ac {
                return Err(format!(
                    "after {} ms of a clean network dev{i} is not in a session the AC holds: \
                     {:?} at the device, {at_ac:?} at the AC",
                    self.clean_ms,
                    d.session()
                ));
            }
        }
        Ok(())
    }
}
