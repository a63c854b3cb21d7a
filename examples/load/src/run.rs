//! Running many devices against an AC over UDP from one process: real [`Device`] state
//! machines over a few UDP sockets, their timers in one heap, and what they and the AC did
//! in the measurement as one JSON summary.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use clap::Args;
use pcxses_core::wire::{Bottle, JoinNonce};
use pcxses_core::{
    Device, DeviceConfig, DeviceEvent, Epoch, Instant, Limits, Output, SessionId, MAX_BOTTLE_LEN,
};
use pcxses_program::procfs;

use crate::config::device_name;

/// `pcxses-load run`.
#[derive(Args)]
pub struct RunArgs {
    /// The AC's address.
    #[arg(long)]
    pub ac: SocketAddr,
    /// Devices to simulate.
    #[arg(long)]
    pub devices: usize,
    /// HELLO interval.
    #[arg(long, default_value_t = 1_000)]
    pub hello_ms: u32,
    /// Dead interval the devices propose (the AC clamps it to at least 3 HELLOs).
    #[arg(long, default_value_t = 3_000)]
    pub dead_ms: u32,
    /// Length of the measurement, after every device joined.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// The AC's process id, for its RSS, threads and CPU.
    #[arg(long)]
    pub ac_pid: Option<u32>,
    /// UDP sockets the devices share.
    #[arg(long, default_value_t = 16)]
    pub sockets: usize,
    /// Time over which the devices start.
    #[arg(long, default_value_t = 5_000)]
    pub ramp_ms: u64,
    /// Each device reports a new state before every HELLO (state updates per second then
    /// follow the HELLO rate).
    #[arg(long)]
    pub states: bool,
    /// Catastrophic loss: this percentage of the devices stop at once, `--stop-after-s`
    /// into the measurement; the summary then says how their computations were re-homed.
    #[arg(long, default_value_t = 0)]
    pub stop_percent: u32,
    /// When the devices stop, seconds into the measurement.
    #[arg(long, default_value_t = 5)]
    pub stop_after_s: u64,
    /// Write the AC's `/proc` figures, sampled every 500 ms from the start of the run, to
    /// this file as JSON lines (`t_s`, `phase`, `rss_kb`, `cpu_percent`).
    #[arg(long, value_name = "FILE")]
    pub samples: Option<std::path::PathBuf>,
}

/// Traffic counters of one phase of the run.
#[derive(Default, Clone, Copy)]
struct Traffic {
    hellos: u64,
    /// HELLOs the AC answered.
    hello_acks: u64,
    /// States the AC acknowledged.
    states: u64,
    bytes_out: u64,
    bytes_in: u64,
}

struct Load {
    devices: Vec<Option<Device>>,
    sockets: Vec<UdpSocket>,
    ac: SocketAddr,
    epoch: Epoch,
    /// Device timers: `(deadline, device)`; `armed` holds each device's live entry.
    timers: BinaryHeap<Reverse<(Instant, u32)>>,
    armed: Vec<Instant>,
    by_session: HashMap<SessionId, u32>,
    by_nonce: HashMap<JoinNonce, u32>,
    joins: Vec<u32>,
    /// Devices that joined at least once.
    joined: usize,
    stops: u64,
    traffic: Traffic,
    /// Whether devices report a new state before every HELLO.
    states: bool,
    /// When each install arrived.
    installs: Vec<Instant>,
}

impl Load {
    fn drain(&mut self, i: u32) {
        let limits = Limits::datagram(MAX_BOTTLE_LEN);
        let Some(device) = self.devices[i as usize].as_mut() else {
            return;
        };
        let socket = &self.sockets[i as usize % self.sockets.len()];
        loop {
            match device.poll_output() {
                Output::Transmit(t) => {
                    if let Ok(b) = Bottle::decode(t.bytes, &limits) {
                        match b {
                            Bottle::GoodMorning(gm) => {
                                self.by_nonce.insert(gm.nonce, i);
                            }
                            Bottle::Hello(_) => self.traffic.hellos += 1,
                            _ => {}
                        }
                    }
                    self.traffic.bytes_out += t.bytes.len() as u64;
                    let _ = socket.send_to(t.bytes, self.ac);
                }
                Output::Event(DeviceEvent::Joined { session, run, .. }) => {
                    self.by_session.insert(session, i);
                    if self.joins[i as usize] == 0 {
                        self.joined += 1;
                    }
                    self.joins[i as usize] += 1;
                    // The application "starts" its computation and reports a first state.
                    let now = self.epoch.now();
                    for c in run {
                        let _ = device.set_state(now, &c, &0u64.to_le_bytes());
                    }
                }
                Output::Event(DeviceEvent::Stop { .. }) => self.stops += 1,
                Output::Event(DeviceEvent::StateStored { .. }) => self.traffic.states += 1,
                Output::Event(DeviceEvent::Install(install)) => {
                    // The application starts what it is given at once.
                    let now = self.epoch.now();
                    let _ = device.answer_install(now, install.id, true);
                    self.installs.push(now);
                }
                Output::Event(_) => {}
                Output::Timeout(at) => {
                    if at < self.armed[i as usize] {
                        self.armed[i as usize] = at;
                        self.timers.push(Reverse((at, i)));
                    }
                    return;
                }
            }
        }
    }

    /// Which device a datagram from the AC is for; counts the HELLOs answered.
    fn route(&mut self, bytes: &[u8]) -> Option<u32> {
        match Bottle::decode(bytes, &Limits::datagram(MAX_BOTTLE_LEN)).ok()? {
            Bottle::HelloAck(a) => {
                self.traffic.hello_acks += 1;
                self.by_session.get(&a.session).copied()
            }
            Bottle::GoodMorningAck(a) => self.by_nonce.get(&a.nonce).copied(),
            Bottle::Reject(r) if r.session == SessionId::NONE => {
                self.by_nonce.get(&r.nonce).copied()
            }
            b => self.by_session.get(&b.session()?).copied(),
        }
    }

    /// Handles every datagram waiting on the sockets; returns how many there were.
    fn receive(&mut self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        for k in 0..self.sockets.len() {
            loop {
                let len = match self.sockets[k].recv(buf) {
                    Ok(len) => len,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break,
                };
                n += 1;
                self.traffic.bytes_in += len as u64;
                let Some(i) = self.route(&buf[..len]) else {
                    continue;
                };
                let now = self.epoch.now();
                if let Some(d) = self.devices[i as usize].as_mut() {
                    let _ = d.handle_receive(now, &buf[..len]);
                }
                self.drain(i);
            }
        }
        n
    }

    /// Runs every device timer that is due; returns how many ran.
    fn timers(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some(&Reverse((at, i))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if self.armed[i as usize] != at {
                continue;
            }
            self.armed[i as usize] = Instant::MAX;
            if let Some(d) = self.devices[i as usize].as_mut() {
                if self.states {
                    let running: Vec<String> = d.running().map(String::from).collect();
                    let state = now.as_micros().to_le_bytes();
                    for c in running {
                        let _ = d.set_state(now, &c, &state);
                    }
                }
                d.handle_timeout(now);
            }
            self.drain(i);
            n += 1;
        }
        n
    }
}

/// The AC's `/proc` figures, sampled over the run: the highest RSS and CPU share, and each
/// sample as a JSON line if asked for.
struct AcSamples {
    pid: Option<String>,
    rss_kb: u64,
    cpu_percent: f64,
    last: Option<(std::time::Instant, u64)>,
    next: std::time::Instant,
    start: std::time::Instant,
    out: Option<std::io::BufWriter<std::fs::File>>,
}

impl AcSamples {
    /// How often the AC is sampled.
    const EVERY: Duration = Duration::from_millis(500);

    fn new(pid: Option<u32>, out: Option<&std::path::Path>) -> Result<Self, String> {
        let out = out
            .map(|p| std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display())))
            .transpose()?
            .map(std::io::BufWriter::new);
        let now = std::time::Instant::now();
        Ok(AcSamples {
            pid: pid.map(|p| p.to_string()),
            rss_kb: 0,
            cpu_percent: 0.0,
            last: None,
            next: now,
            start: now,
            out,
        })
    }

    /// Samples the AC if the period is over; `phase` names the part of the run.
    fn sample(&mut self, phase: &str) {
        let now = std::time::Instant::now();
        let Some(pid) = self.pid.as_deref().filter(|_| now >= self.next) else {
            return;
        };
        self.next = now + Self::EVERY;
        let rss_kb = procfs::status(pid).map(|s| s.rss_kb);
        let ticks = procfs::cpu_ticks(pid);
        let cpu = ticks.zip(self.last).map(|(ticks, (then, before))| {
            (ticks - before) as f64 / now.duration_since(then).as_secs_f64().max(1e-3)
        });
        self.rss_kb = self.rss_kb.max(rss_kb.unwrap_or(0));
        self.cpu_percent = self.cpu_percent.max(cpu.unwrap_or(0.0));
        self.last = ticks.map(|t| (now, t));
        if let Some(out) = &mut self.out {
            let t_s = now.duration_since(self.start).as_secs_f64();
            let line = serde_json::json!({"t_s": (t_s * 1000.0).round() / 1000.0, "phase": phase,
                "rss_kb": rss_kb, "cpu_percent": cpu.map(f64::round)});
            let _ = writeln!(out, "{line}");
        }
    }
}

/// Runs the devices `args` asks for against the AC, then prints one JSON summary on
/// stdout.
pub fn run(args: RunArgs) -> Result<(), String> {
    let RunArgs {
        ac,
        devices: n,
        hello_ms,
        dead_ms,
        seconds,
        ac_pid,
        sockets,
        ramp_ms,
        states,
        stop_percent,
        stop_after_s,
        samples,
    } = args;
    let mut ac_samples = AcSamples::new(ac_pid, samples.as_deref())?;
    let sockets = sockets.max(1);
    let epoch = Epoch::new();
    let mut load = Load {
        devices: (0..n).map(|_| None).collect(),
        sockets: (0..sockets)
            .map(|_| {
                pcxses_transport_udp::bind_socket("127.0.0.1:0".parse().expect("literal"))?
                    .into_inner()
            })
            .collect::<std::io::Result<_>>()
            .map_err(|e: std::io::Error| e.to_string())?,
        ac,
        epoch,
        timers: BinaryHeap::with_capacity(n),
        armed: vec![Instant::MAX; n],
        by_session: HashMap::with_capacity(n),
        by_nonce: HashMap::with_capacity(n),
        joins: vec![0; n],
        joined: 0,
        stops: 0,
        traffic: Traffic::default(),
        states,
        installs: Vec::new(),
    };
    let mut buf = vec![0u8; MAX_BOTTLE_LEN];
    let mut booted = 0usize;
    // Phase 1: start every device over the ramp and let them all join.
    let join_deadline = epoch.now() + Duration::from_millis(ramp_ms) + Duration::from_secs(30);
    loop {
        let now = epoch.now();
        let due = if ramp_ms == 0 {
            n
        } else {
            ((now.as_millis() as u128 * n as u128) / u128::from(ramp_ms)).min(n as u128) as usize
        };
        while booted < due {
            let mut cfg = DeviceConfig::new(&device_name(booted), 0x10ad_0000_0000 ^ booted as u64);
            cfg.hello = Duration::from_millis(hello_ms.into());
            cfg.dead = Duration::from_millis(dead_ms.into());
            load.devices[booted] = Some(Device::new(cfg, now));
            load.drain(booted as u32);
            booted += 1;
        }
        ac_samples.sample("join");
        let busy = load.receive(&mut buf) + load.timers(now);
        if load.joined == n {
            break;
        }
        if now > join_deadline {
            return Err(format!("only {} of {n} devices joined", load.joined));
        }
        if busy == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let join_s = epoch.now().as_micros() as f64 / 1e6;
    // Phase 2: measure.
    let ac_pid = ac_pid.map(|p| p.to_string());
    let cpu_before = ac_pid.as_deref().and_then(procfs::cpu_ticks);
    let joins_before: u32 = load.joins.iter().sum();
    let stops_before = load.stops;
    load.traffic = Traffic::default();
    load.installs.clear();
    let start = std::time::Instant::now();
    let end = start + Duration::from_secs(seconds);
    let stop_at = start + Duration::from_secs(stop_after_s);
    let mut stopped: Option<(Instant, usize)> = None;
    while std::time::Instant::now() < end {
        let now = epoch.now();
        if stop_percent > 0 && stopped.is_none() && std::time::Instant::now() >= stop_at {
            // Every k-th device stops at once, without a word: SIGKILL, for the AC.
            let count = n * stop_percent.min(100) as usize / 100;
            for i in (0..n).filter(|i| i * count / n != (i + 1) * count / n) {
                load.devices[i] = None;
            }
            stopped = Some((now, count));
        }
        ac_samples.sample("measure");
        let busy = load.receive(&mut buf) + load.timers(now);
        if busy == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_after = ac_pid.as_deref().and_then(procfs::cpu_ticks);
    let cpu = cpu_before.zip(cpu_after).map(|(a, b)| b - a);
    let status = ac_pid.as_deref().and_then(procfs::status);
    let rejoins = load.joins.iter().sum::<u32>() - joins_before;
    let t = load.traffic;
    let summary = serde_json::json!({
        "devices": n,
        "seconds": seconds,
        "hello_ms": hello_ms,
        "hellos_per_s": (t.hellos as f64 / elapsed).round(),
        "states_acked_per_s": (t.states as f64 / elapsed).round(),
        "bytes_per_s_to_ac": (t.bytes_out as f64 / elapsed).round(),
        "bytes_per_s_from_ac": (t.bytes_in as f64 / elapsed).round(),
        "hello_acks_per_s": (t.hello_acks as f64 / elapsed).round(),
        "false_deaths": rejoins,
        "stops": load.stops - stops_before,
        "join_s": (join_s * 10.0).round() / 10.0,
        "load_rss_kb": procfs::status("self").map(|s| s.rss_kb),
        "ac_rss_kb": status.map(|s| s.rss_kb),
        "ac_peak_rss_kb": status.map(|s| s.peak_rss_kb),
        "ac_sampled_peak_rss_kb": ac_samples.rss_kb,
        "ac_threads": status.map(|s| s.threads),
        "ac_cpu_percent": cpu.map(|ticks| (ticks as f64 / elapsed).round()),
        "ac_peak_cpu_percent": ac_samples.cpu_percent.round(),
        // CPU ticks are hundredths of a second.
        "ac_cpu_us_per_hello": cpu
            .filter(|_| t.hello_acks > 0)
            .map(|ticks| (ticks as f64 * 10_000.0 / t.hello_acks as f64 * 100.0).round() / 100.0),
    });
    let mut summary = summary;
    if let Some((at, count)) = stopped {
        let installs: Vec<Instant> = load.installs.iter().copied().filter(|i| *i >= at).collect();
        let secs = |i: Instant| i.saturating_since(at).as_secs_f64();
        // The most MORPHs completed in any one second.
        let max_per_s = installs
            .iter()
            .enumerate()
            .map(|(k, &t)| {
                installs[k..]
                    .iter()
                    .take_while(|&&u| secs(u) - secs(t) < 1.0)
                    .count()
            })
            .max()
            .unwrap_or(0);
        summary["stopped"] = count.into();
        summary["rehomed"] = installs.len().into();
        summary["rehome_s"] = installs
            .last()
            .map(|&t| (secs(t) * 1000.0).round() / 1000.0)
            .into();
        summary["first_install_s"] = installs
            .first()
            .map(|&t| (secs(t) * 1000.0).round() / 1000.0)
            .into();
        summary["max_installs_per_s"] = max_per_s.into();
    }
    if let Some(out) = &mut ac_samples.out {
        out.flush().map_err(|e| e.to_string())?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "{summary}").map_err(|e| e.to_string())
}
