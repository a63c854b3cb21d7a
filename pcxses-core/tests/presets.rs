//! The configuration presets: each AC preset accepts its device preset's proposal
//! unchanged, passes validation, and the WAN pair survives a lossy link.

use std::collections::VecDeque;
use std::time::Duration;

use pcxses_core::controller::{ComputationSpec, DeviceSpec};
use pcxses_core::wire::{Bottle, StateMode};
use pcxses_core::{
    Controller, ControllerConfig, ControllerEvent, Device, DeviceConfig, DeviceEvent, Instant,
    Limits, LinkId, MemoryRepository, Output,
};

type Preset = (
    &'static str,
    fn(&str, u64) -> DeviceConfig,
    fn(u64, Vec<DeviceSpec>, Vec<ComputationSpec>) -> ControllerConfig,
);

const PRESETS: [Preset; 3] = [
    ("lan", DeviceConfig::lan, ControllerConfig::lan),
    ("wan", DeviceConfig::wan, ControllerConfig::wan),
    (
        "microcontroller",
        DeviceConfig::microcontroller,
        ControllerConfig::microcontroller,
    ),
];

/// An AC and one device on a link with a fixed one-way delay that loses each packet with
/// probability `loss`, in virtual time. The device reports a new state of its computation
/// every `state_every` while its lease allows.
struct Pair {
    now: Instant,
    ac: Controller,
    device: Device,
    delay: Duration,
    loss: f64,
    rng: u64,
    /// Packets in flight, by arrival: (arrival, to the AC?, bytes).
    wire: VecDeque<(Instant, bool, Vec<u8>)>,
    ac_at: Instant,
    device_at: Instant,
    state_every: Duration,
    next_state: Instant,
    counter: u64,
    /// States reported.
    states_set: usize,
    ac_events: Vec<(Instant, ControllerEvent)>,
    device_events: Vec<(Instant, DeviceEvent)>,
    /// Bottles either side refused.
    refused: usize,
}

impl Pair {
    fn new(
        ac_config: ControllerConfig,
        device_config: DeviceConfig,
        delay: Duration,
        loss: f64,
    ) -> Pair {
        let mut repo = MemoryRepository::default();
        repo.insert("counter.bin", vec![7u8; 256]);
        let now = Instant::from_millis(0);
        let ac = Controller::new(ac_config, repo, now).expect("a valid configuration");
        let mut pair = Pair {
            now,
            ac,
            device: Device::new(device_config, now),
            delay,
            loss,
            rng: 0x9e37_79b9_7f4a_7c15,
            wire: VecDeque::new(),
            ac_at: now,
            device_at: now,
            state_every: Duration::from_secs(1),
            next_state: now,
            counter: 0,
            states_set: 0,
            ac_events: Vec::new(),
            device_events: Vec::new(),
            refused: 0,
        };
        pair.device.handle_timeout(now);
        pair.drain_device();
        pair
    }

    /// A uniform draw in [0, 1) (splitmix64).
    fn draw(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as f64 / (u64::MAX as f64 + 1.0)
    }

    fn send(&mut self, to_ac: bool, bytes: Vec<u8>) {
        if self.draw() >= self.loss {
            self.wire.push_back((self.now + self.delay, to_ac, bytes));
        }
    }

    /// Drains the device; its application starts every install at once, restoring the
    /// counter from the LKGS.
    fn drain_device(&mut self) {
        let mut sent = Vec::new();
        let mut installs = Vec::new();
        loop {
            match self.device.poll_output() {
                Output::Transmit(t) => sent.push(t.bytes.to_vec()),
                Output::Event(DeviceEvent::Install(install)) => {
                    installs.push((install.id, install.lkgs().to_vec()));
                    self.device_events
                        .push((self.now, DeviceEvent::Install(install)));
                }
                Output::Event(e) => self.device_events.push((self.now, e)),
                Output::Timeout(at) => {
                    self.device_at = at;
                    break;
                }
            }
        }
        for bytes in sent {
            self.send(true, bytes);
        }
        for (id, lkgs) in installs {
            let restored = <[u8; 8]>::try_from(lkgs).map(u64::from_le_bytes);
            self.counter = restored.expect("the counter's 8-byte state");
            let answered = self.device.answer_install(self.now, id, true);
            answered.expect("an install waiting for its answer");
            self.drain_device();
        }
    }

    fn drain_ac(&mut self) {
        let mut sent = Vec::new();
        loop {
            match self.ac.poll_output() {
                Output::Transmit(t) => sent.push(t.bytes.to_vec()),
                Output::Event(e) => self.ac_events.push((self.now, e)),
                Output::Timeout(at) => {
                    self.ac_at = at;
                    break;
                }
            }
        }
        for bytes in sent {
            self.send(false, bytes);
        }
    }

    /// Runs until `end`, jumping from one deadline or arrival to the next.
    fn run_until(&mut self, end: Instant) {
        loop {
            let arrival = self.wire.front().map_or(Instant::MAX, |p| p.0);
            let next = arrival
                .min(self.ac_at)
                .min(self.device_at)
                .min(self.next_state);
            if next > end {
                self.now = end;
                return;
            }
            self.now = next;
            let now = self.now;
            while self.wire.front().is_some_and(|p| p.0 <= now) {
                let (_, to_ac, bytes) = self.wire.pop_front().expect("a packet");
                if to_ac {
                    let received = self.ac.handle_receive(now, LinkId(1), &bytes, None);
                    self.refused += usize::from(received.is_err());
                    self.drain_ac();
                } else {
                    let received = self.device.handle_receive(now, &bytes);
                    self.refused += usize::from(received.is_err());
                    self.drain_device();
                }
            }
            if self.device_at <= now {
                self.device.handle_timeout(now);
                self.drain_device();
            }
            if self.ac_at <= now {
                self.ac.handle_timeout(now);
                self.drain_ac();
            }
            if self.next_state <= now {
                self.next_state = now + self.state_every;
                let leased = self.device.lease_until().is_some_and(|until| now < until);
                if leased && self.device.running().any(|c| c == "counter") {
                    self.counter += 1;
                    self.states_set += 1;
                    self.device
                        .set_state(now, "counter", &self.counter.to_le_bytes())
                        .expect("a small state of a running computation");
                    self.drain_device();
                }
            }
        }
    }

    fn joined(&self) -> Vec<&DeviceEvent> {
        self.device_events
            .iter()
            .map(|(_, e)| e)
            .filter(|e| matches!(e, DeviceEvent::Joined { .. }))
            .collect()
    }

    fn fenced(&self) -> usize {
        let fenced = |e: &DeviceEvent| {
            matches!(
                e,
                DeviceEvent::Stop {
                    reason: pcxses_core::device::StopReason::Fenced,
                    ..
                }
            )
        };
        self.device_events.iter().filter(|(_, e)| fenced(e)).count()
    }

    fn deaths(&self) -> usize {
        let died = |e: &ControllerEvent| matches!(e, ControllerEvent::DeviceFailed { .. });
        self.ac_events.iter().filter(|(_, e)| died(e)).count()
    }

    fn states_stored(&self) -> usize {
        let stored = |e: &ControllerEvent| matches!(e, ControllerEvent::StateStored { .. });
        self.ac_events.iter().filter(|(_, e)| stored(e)).count()
    }
}

fn registry() -> (Vec<DeviceSpec>, Vec<ComputationSpec>) {
    (
        vec![
            DeviceSpec::new("pump", &["counter"]),
            DeviceSpec::new("spare", &[]),
        ],
        vec![ComputationSpec::new("counter", "counter.bin")],
    )
}

fn preset_pair(
    device: fn(&str, u64) -> DeviceConfig,
    ac: fn(u64, Vec<DeviceSpec>, Vec<ComputationSpec>) -> ControllerConfig,
) -> (ControllerConfig, DeviceConfig) {
    let (devices, computations) = registry();
    (ac(1, devices, computations), device("pump", 0x5eed))
}

#[test]
fn every_ac_preset_is_valid_and_bounds_its_device_preset() {
    for (name, device, ac) in PRESETS {
        let (ac, device) = preset_pair(device, ac);
        assert_eq!(ac.validate(), Ok(()), "{name}");
        assert!(ac.hello.contains(device.hello), "{name}: hello");
        assert!(ac.dead.contains(device.dead), "{name}: dead");
        assert!(
            device.dead >= device.hello * 3,
            "{name}: three HELLOs per dead interval"
        );
        assert!(
            ac.devices
                .iter()
                .all(|d| usize::from(d.max_hosted) <= device.max_hosted),
            "{name}: the AC asks no device to host more than the preset does"
        );
    }
}

#[test]
fn every_preset_pair_joins_with_exactly_the_preset_intervals() {
    for (name, device, ac) in PRESETS {
        let (ac_config, device_config) = preset_pair(device, ac);
        let (hello, dead) = (device_config.hello, device_config.dead);
        let mut pair = Pair::new(ac_config, device_config, Duration::from_millis(1), 0.0);
        pair.run_until(Instant::from_millis(0) + dead);
        let joined = pair.joined();
        assert_eq!(joined.len(), 1, "{name}: {:?}", pair.device_events);
        let DeviceEvent::Joined {
            run,
            hello: got_hello,
            dead: got_dead,
            fence,
            mode,
            ..
        } = joined[0]
        else {
            unreachable!("filtered on Joined");
        };
        assert_eq!(run, &["counter"], "{name}");
        assert_eq!((*got_hello, *got_dead), (hello, dead), "{name}");
        assert_eq!(
            *fence,
            Some(dead - dead / 4),
            "{name}: fence = dead - dead/4"
        );
        assert_eq!(*mode, StateMode::InHello, "{name}");
        assert!(pair.states_stored() > 0, "{name}: the AC stored a state");
        assert_eq!(pair.refused, 0, "{name}: nothing refused on a clean link");
    }
}

#[test]
fn the_microcontroller_preset_caps_what_the_ac_asks_a_device_to_host() {
    let (mut devices, computations) = registry();
    devices[1].max_hosted = 1;
    let config = ControllerConfig::microcontroller(1, devices, computations);
    let hosted: Vec<u16> = config.devices.iter().map(|d| d.max_hosted).collect();
    assert_eq!(hosted, [2, 1]);
    assert_eq!(DeviceConfig::microcontroller("pump", 1).max_hosted, 2);
}

#[test]
fn new_is_the_lan_preset() {
    let (devices, computations) = registry();
    assert_eq!(
        ControllerConfig::new(3, devices.clone(), computations.clone()),
        ControllerConfig::lan(3, devices, computations)
    );
    assert_eq!(DeviceConfig::new("pump", 3), DeviceConfig::lan("pump", 3));
}

#[test]
fn a_device_proposes_its_intervals_in_whole_milliseconds_rounded_down() {
    let mut config = DeviceConfig::lan("pump", 1);
    config.hello = Duration::from_micros(1_999);
    config.dead = Duration::MAX;
    let mut device = Device::new(config, Instant::from_millis(0));
    device.handle_timeout(Instant::from_millis(0));
    let Output::Transmit(t) = device.poll_output() else {
        panic!("no GOOD_MORNING");
    };
    let Ok(Bottle::GoodMorning(gm)) = Bottle::decode(t.bytes, &Limits::DEFAULT) else {
        panic!("not a GOOD_MORNING");
    };
    assert_eq!((gm.hello_ms, gm.dead_ms), (1, u32::MAX));
}

/// `hours` of a preset pair on a link losing `loss` of the packets each way, with a round
/// trip of `rtt`: the pair after it.
fn lossy(preset: &Preset, rtt_ms: u64, loss: f64, hours: u64) -> Pair {
    let (ac_config, device_config) = preset_pair(preset.1, preset.2);
    let delay = Duration::from_millis(rtt_ms / 2);
    let mut pair = Pair::new(ac_config, device_config, delay, loss);
    pair.run_until(Instant::from_millis(hours * 3_600_000));
    pair
}

/// Twelve simulated hours at 30% loss each way, with 200 and 300 ms round trips: under the
/// WAN pair the AC declares no death, the device never fences, and states keep being
/// stored.
#[test]
fn the_wan_preset_survives_thirty_percent_loss() {
    for rtt in [200, 300] {
        let pair = lossy(&PRESETS[1], rtt, 0.3, 12);
        assert_eq!(pair.joined().len(), 1, "{rtt} ms");
        assert_eq!(pair.deaths(), 0, "{rtt} ms");
        assert_eq!(pair.fenced(), 0, "{rtt} ms");
        // A new state every second, each riding on a HELLO that arrives 70% of the time.
        let (set, stored) = (pair.states_set, pair.states_stored());
        assert!(
            set > 12 * 3_500 && stored > set / 2,
            "{rtt} ms: {stored} of {set}"
        );
    }
}

/// The same link kills devices of the LAN pair many times an hour.
#[test]
fn the_lan_preset_does_not_survive_thirty_percent_loss() {
    let pair = lossy(&PRESETS[0], 200, 0.3, 1);
    assert!(pair.deaths() > 10, "{}", pair.deaths());
    assert!(pair.fenced() > 10, "{}", pair.fenced());
}

/// Twelve simulated hours at 10% loss each way and a 100 ms round trip: under the
/// microcontroller pair, no death and no fence.
#[test]
fn the_microcontroller_preset_survives_ten_percent_loss() {
    let pair = lossy(&PRESETS[2], 100, 0.1, 12);
    assert_eq!(pair.joined().len(), 1);
    assert_eq!(pair.deaths(), 0);
    assert_eq!(pair.fenced(), 0);
    // A new state every second; each HELLO, every 3 s, carries the latest.
    let (set, stored) = (pair.states_set, pair.states_stored());
    assert!(set > 12 * 3_500 && stored > set / 4, "{stored} of {set}");
}
