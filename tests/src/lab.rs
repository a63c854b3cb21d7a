//! A hands-on driver for scenario tests: one AC and a few devices on a 1 ms network whose
//! packets a test can inspect, drop, change or duplicate, and into which it can inject
//! bottles of its own.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pcxses_core::controller::{ComputationSpec, DeviceSpec};
use pcxses_core::device::DeviceEvent;
use pcxses_core::wire::Bottle;
use pcxses_core::{
    Controller, ControllerConfig, ControllerEvent, Device, DeviceConfig, Instant, Limits, LinkId,
    MemoryRepository, Output, MAX_BOTTLE_LEN,
};

use crate::memory_journal::{MemoryJournal, Stored};
use crate::sim::AC;
use pcxses_core::psk::{CHALLENGE_LEN, TRAILER_LEN};

/// A packet on the lab network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Sender.
    pub from: LinkId,
    /// Receiver.
    pub to: LinkId,
    /// The encoded bottle.
    pub bytes: Vec<u8>,
}

impl Packet {
    /// The bottle, decoded; for a sealed one (pre-shared-key mode) the bottle inside,
    /// unchecked.
    pub fn bottle(&self) -> Option<Bottle<'_>> {
        let limits = Limits::datagram(MAX_BOTTLE_LEN);
        [0, TRAILER_LEN, TRAILER_LEN + CHALLENGE_LEN]
            .into_iter()
            .filter_map(|trailer| self.bytes.len().checked_sub(trailer))
            .find_map(|end| Bottle::decode(&self.bytes[..end], &limits).ok())
    }

    /// Whether the bytes are a plain bottle, not a sealed one.
    pub fn is_plain(&self) -> bool {
        Bottle::decode(&self.bytes, &Limits::datagram(MAX_BOTTLE_LEN)).is_ok()
    }

    /// The bottle's kind, or `"?"`.
    pub fn kind(&self) -> &'static str {
        self.bottle().map_or("?", |b| b.kind())
    }
}

/// What the filter does with a packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver it (possibly changed by the filter).
    Deliver,
    /// Lose it.
    Drop,
    /// Deliver it twice.
    Duplicate,
}

type Filter = Box<dyn FnMut(&mut Packet) -> Verdict>;

/// The lab: device `i` has link `i + 1`.
pub struct Lab {
    /// Virtual now.
    pub now: Instant,
    /// The AC, or `None` while it is down.
    pub ac: Option<Controller>,
    /// The AC's configuration.
    pub ac_config: ControllerConfig,
    /// The AC's repository.
    pub repo: MemoryRepository,
    /// The devices; `None` once crashed.
    pub devices: Vec<Option<Device>>,
    /// Devices that are frozen: they process nothing.
    pub frozen: Vec<bool>,
    /// Every AC event so far.
    pub ac_events: Vec<(Instant, ControllerEvent)>,
    /// Every device event so far, per device.
    pub device_events: Vec<Vec<(Instant, DeviceEvent)>>,
    /// Every packet sent so far (before the filter).
    pub wire: Vec<Packet>,
    /// Whether each device's application accepts installs.
    pub accept_installs: Vec<bool>,
    /// Per device, the identity its transport authenticated (a QUIC certificate's name),
    /// handed to the AC with every bottle from the device's link; `None`: none.
    pub identities: Vec<Option<String>>,
    filter: Filter,
    in_flight: VecDeque<(Instant, Packet)>,
    /// Packets of `wire` already routed through the filter.
    routed: usize,
    ac_timeout: Instant,
    device_timeouts: Vec<Instant>,
    seeds: u64,
}

/// A bottle's bytes, unsealed, as any peer could send them.
pub fn encode(b: &pcxses_core::wire::Bottle<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    b.encode_to_vec(&mut out, pcxses_core::MAX_BOTTLE_LEN)
        .expect("a bottle within the largest length");
    out
}

impl Lab {
    /// A lab whose two devices joined and stored a state of `comp0`.
    pub fn settled() -> Lab {
        Lab::settled_with(2, |_| {})
    }

    /// A lab of `n` devices (see [`Lab::new`]) that joined, `dev0` having stored the state
    /// `b"state"` of `comp0`.
    pub fn settled_with(n: usize, tweak: impl FnOnce(&mut ControllerConfig)) -> Lab {
        let mut lab = Lab::new(n, tweak);
        lab.run(100);
        let now = lab.now;
        lab.device(0)
            .set_state(now, "comp0", b"state")
            .expect("dev0 runs comp0");
        lab.run(200);
        lab
    }

    /// A lab with `n` devices `dev0..`, each running `comp{i}` (object `comp{i}.bin` of
    /// 3000 bytes), HELLO every 100 ms, dead after 300 ms. `tweak` adjusts the AC's
    /// configuration before it starts.
    pub fn new(n: usize, tweak: impl FnOnce(&mut ControllerConfig)) -> Lab {
        let mut repo = MemoryRepository::default();
        let mut comps = Vec::new();
        let mut devices = Vec::new();
        for i in 0..n {
            repo.insert(
                format!("comp{i}.bin"),
                (0..3000).map(|b| (b % 251) as u8 ^ i as u8).collect(),
            );
            comps.push(ComputationSpec::new(
                &format!("comp{i}"),
                &format!("comp{i}.bin"),
            ));
            devices.push(DeviceSpec::new(&format!("dev{i}"), &[&format!("comp{i}")]));
        }
        let mut cfg = ControllerConfig::new(7, devices, comps);
        cfg.rto = Duration::from_millis(20);
        cfg.morph_timeout = Duration::from_secs(1);
        tweak(&mut cfg);
        let now = Instant::from_millis(0);
        let ac = Controller::new(cfg.clone(), repo.clone(), now).expect("valid configuration");
        let mut lab = Lab {
            now,
            ac: Some(ac),
            ac_config: cfg,
            repo,
            devices: Vec::new(),
            frozen: vec![false; n],
            ac_events: Vec::new(),
            device_events: vec![Vec::new(); n],
            wire: Vec::new(),
            accept_installs: vec![true; n],
            identities: vec![None; n],
            filter: Box::new(|_| Verdict::Deliver),
            in_flight: VecDeque::new(),
            routed: 0,
            ac_timeout: Instant::MAX,
            device_timeouts: vec![Instant::MAX; n],
            seeds: 100,
        };
        for i in 0..n {
            lab.devices.push(None);
            lab.boot(i, |_| {});
        }
        lab
    }

    /// The default configuration of device `i`.
    pub fn device_config(&mut self, i: usize) -> DeviceConfig {
        self.seeds += 1;
        let mut cfg = DeviceConfig::new(&format!("dev{i}"), self.seeds);
        cfg.hello = Duration::from_millis(100);
        cfg.dead = Duration::from_millis(300);
        cfg.rto = Duration::from_millis(20);
        cfg.join_retry = Duration::from_millis(50);
        cfg.join_retry_max = Duration::from_millis(400);
        cfg
    }

    /// Starts (or restarts) device `i` as a new incarnation.
    pub fn boot(&mut self, i: usize, tweak: impl FnOnce(&mut DeviceConfig)) {
        let mut cfg = self.device_config(i);
        tweak(&mut cfg);
        self.devices[i] = Some(Device::new(cfg, self.now));
        self.frozen[i] = false;
        self.device_timeouts[i] = self.now;
    }

    /// Kills device `i` (SIGKILL).
    pub fn crash(&mut self, i: usize) {
        self.devices[i] = None;
    }

    /// Replaces the packet filter.
    pub fn set_filter(&mut self, f: impl FnMut(&mut Packet) -> Verdict + 'static) {
        self.filter = Box::new(f);
    }

    /// Drops the packets for which `f` holds, delivers the others.
    pub fn drop_where(&mut self, f: impl Fn(&Packet) -> bool + 'static) {
        self.set_filter(move |p| {
            if f(p) {
                Verdict::Drop
            } else {
                Verdict::Deliver
            }
        });
    }

    /// Delivers every packet unchanged again.
    pub fn clear_filter(&mut self) {
        self.filter = Box::new(|_| Verdict::Deliver);
    }

    /// Gives the AC a [`MemoryJournal`] that keeps every change; returns what it stores.
    pub fn journal_ac(&mut self) -> Arc<Mutex<Stored>> {
        let ac = self.ac.take().expect("AC is up");
        let (journal, stored) = MemoryJournal::start(&ac, usize::MAX);
        self.ac = Some(ac.with_journal(Box::new(journal)));
        stored
    }

    /// Replaces the AC with one restored now from `snapshot` and the `changes` after it.
    pub fn restore_ac<'a>(
        &mut self,
        snapshot: &'a [u8],
        changes: impl IntoIterator<Item = &'a [u8]>,
    ) {
        let ac = Controller::new(self.ac_config.clone(), self.repo.clone(), self.now)
            .expect("a valid configuration")
            .restore(snapshot, changes, self.now)
            .expect("a restorable snapshot");
        self.ac = Some(ac);
    }

    /// The controller (panics while it is down).
    pub fn ac(&self) -> &Controller {
        self.ac.as_ref().expect("AC is up")
    }

    /// The controller, mutably (panics while it is down).
    pub fn ac_mut(&mut self) -> &mut Controller {
        self.ac.as_mut().expect("AC is up")
    }

    /// Device `i` (panics if crashed).
    pub fn device(&mut self, i: usize) -> &mut Device {
        self.devices[i].as_mut().expect("device is up")
    }

    /// Runs the network and every timer for `ms` milliseconds of virtual time.
    pub fn run(&mut self, ms: u64) {
        let end = Instant::from_micros(self.now.as_micros() + ms * 1000);
        loop {
            self.flush();
            let mut next = self.in_flight.front().map_or(Instant::MAX, |(at, _)| *at);
            if self.ac.is_some() {
                next = next.min(self.ac_timeout);
            }
            for i in 0..self.devices.len() {
                if self.devices[i].is_some() && !self.frozen[i] {
                    next = next.min(self.device_timeouts[i]);
                }
            }
            if next > end {
                self.now = end;
                return;
            }
            self.now = self.now.max(next);
            let now = self.now;
            while self.in_flight.front().is_some_and(|(at, _)| *at <= now) {
                let (_, p) = self.in_flight.pop_front().expect("checked");
                self.deliver(p);
            }
            if self.ac.is_some() && self.ac_timeout <= now {
                self.ac_mut().handle_timeout(now);
            }
            for i in 0..self.devices.len() {
                if !self.frozen[i] && self.device_timeouts[i] <= now {
                    if let Some(d) = self.devices[i].as_mut() {
                        d.handle_timeout(now);
                    }
                }
            }
        }
    }

    /// Hands `bytes` to the AC as if they came from `from`; returns what it said.
    pub fn inject_to_ac(
        &mut self,
        from: LinkId,
        bytes: &[u8],
    ) -> Result<(), pcxses_core::InputError> {
        let now = self.now;
        let r = self.ac_mut().handle_receive(now, from, bytes, None);
        self.flush();
        r
    }

    /// The packets the AC sent to `to` from the `since`-th packet of the wire on.
    pub fn answers_to(&self, to: LinkId, since: usize) -> Vec<Packet> {
        self.wire[since..]
            .iter()
            .filter(|p| p.from == AC && p.to == to)
            .cloned()
            .collect()
    }

    /// Hands `bytes` to device `i` as if they came from the AC.
    pub fn inject_to_device(
        &mut self,
        i: usize,
        bytes: &[u8],
    ) -> Result<(), pcxses_core::InputError> {
        let now = self.now;
        let r = self.device(i).handle_receive(now, bytes);
        self.flush();
        r
    }

    /// The AC events matching `f`, with their times.
    pub fn ac_events_where(
        &self,
        f: impl Fn(&ControllerEvent) -> bool,
    ) -> Vec<(Instant, ControllerEvent)> {
        self.ac_events
            .iter()
            .filter(|(_, e)| f(e))
            .cloned()
            .collect()
    }

    /// Device `i`'s events matching `f`.
    pub fn device_events_where(
        &self,
        i: usize,
        f: impl Fn(&DeviceEvent) -> bool,
    ) -> Vec<(Instant, DeviceEvent)> {
        self.device_events[i]
            .iter()
            .filter(|(_, e)| f(e))
            .cloned()
            .collect()
    }

    /// Packets sent so far whose bottle kind is `kind`.
    pub fn sent(&self, kind: &str) -> Vec<Packet> {
        self.wire
            .iter()
            .filter(|p| p.kind() == kind)
            .cloned()
            .collect()
    }

    /// Drains every machine's outputs into the network and the event logs, reacting to
    /// installs as the application would.
    fn flush(&mut self) {
        loop {
            let mut progress = false;
            if let Some(ac) = self.ac.as_mut() {
                loop {
                    match ac.poll_output() {
                        Output::Transmit(t) => {
                            self.wire.push(Packet {
                                from: AC,
                                to: t.to,
                                bytes: t.bytes.to_vec(),
                            });
                            progress = true;
                        }
                        Output::Event(e) => self.ac_events.push((self.now, e)),
                        Output::Timeout(t) => {
                            self.ac_timeout = t;
                            break;
                        }
                    }
                }
            }
            for i in 0..self.devices.len() {
                let mut installs = Vec::new();
                if let Some(d) = self.devices[i].as_mut() {
                    loop {
                        match d.poll_output() {
                            Output::Transmit(t) => {
                                let from = LinkId(i as u64 + 1);
                                self.wire.push(Packet {
                                    from,
                                    to: t.to,
                                    bytes: t.bytes.to_vec(),
                                });
                                progress = true;
                            }
                            Output::Event(e) => {
                                if let DeviceEvent::Install(inst) = &e {
                                    installs.push(inst.id);
                                }
                                self.device_events[i].push((self.now, e));
                            }
                            Output::Timeout(t) => {
                                self.device_timeouts[i] = t;
                                break;
                            }
                        }
                    }
                }
                for id in installs {
                    let now = self.now;
                    let accept = self.accept_installs[i];
                    if let Some(d) = self.devices[i].as_mut() {
                        d.answer_install(now, id, accept).expect("install pending");
                    }
                    progress = true;
                }
            }
            // Route what was sent since the last flush through the filter.
            for k in self.routed..self.wire.len() {
                let mut p = self.wire[k].clone();
                let at = Instant::from_micros(self.now.as_micros() + 1000);
                match (self.filter)(&mut p) {
                    Verdict::Deliver => self.in_flight.push_back((at, p)),
                    Verdict::Drop => {}
                    Verdict::Duplicate => {
                        self.in_flight.push_back((at, p.clone()));
                        self.in_flight.push_back((at, p));
                    }
                }
            }
            self.routed = self.wire.len();
            if !progress {
                return;
            }
        }
    }

    fn deliver(&mut self, p: Packet) {
        let now = self.now;
        if p.to == AC {
            let identity = (p.from.0.checked_sub(1))
                .and_then(|i| self.identities.get(i as usize))
                .and_then(Option::as_deref);
            if let Some(ac) = self.ac.as_mut() {
                let _ = ac.handle_receive(now, p.from, &p.bytes, identity);
            }
            return;
        }
        let i = (p.to.0 as usize).wrapping_sub(1);
        if i >= self.devices.len() {
            // Addressed to a link no device listens on (an injecting test's).
            return;
        }
        if self.frozen[i] {
            // A frozen process reads its socket later; keep the packet for then.
            self.in_flight
                .push_back((Instant::from_micros(now.as_micros() + 1000), p));
            return;
        }
        if let Some(d) = self.devices[i].as_mut() {
            let _ = d.handle_receive(now, &p.bytes);
        }
    }
}
