//! A device agent.
//!
//! `pcxses-device --ac ADDR --name NAME [--transport tcp|udp] [--events jsonl]` joins the
//! AC, runs the computations it is given, reports their state every tick, and takes over
//! computations the AC moves to it, resuming them from their last known good state. A
//! computation is a shipped WebAssembly module (SUI ABI; `--guest NAME=PATH` for the ones
//! it runs natively, the invoked module of the MORPH for the ones it receives) or else a
//! built-in counter whose state is its count. A guest that runs out of fuel or traps is
//! stopped and reported (`guest_failed`); the device carries on. SIGINT or SIGTERM makes it
//! leave with GOOD_BYE.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use pcxses_core::device::DeviceCommand;
use pcxses_core::device::Install;
use pcxses_core::{Device, DeviceConfig, DeviceEvent, Epoch, Mode};
use pcxses_examples::events::device_event;
use pcxses_examples::guest::{Guest, GuestLimits};
use pcxses_examples::shutdown::Shutdown;
use pcxses_examples::transport::Transport;
use smol::future::FutureExt;
use smol::{Executor, Timer};

#[derive(Parser)]
#[command(version, about = "A PCXSES device agent")]
struct Cli {
    /// The AC's address.
    #[arg(long)]
    ac: SocketAddr,
    /// This device's name in the AC's registry.
    #[arg(long)]
    name: String,
    /// The transport.
    #[arg(long, value_enum, default_value = "udp")]
    transport: Transport,
    /// Print protocol events on stdout as JSON lines.
    #[arg(long, value_enum)]
    events: Option<EventFormat>,
    /// Proposed HELLO interval.
    #[arg(long, default_value_t = 200)]
    hello_ms: u32,
    /// Proposed dead interval.
    #[arg(long, default_value_t = 600)]
    dead_ms: u32,
    /// How often the counters count.
    #[arg(long, default_value_t = 100)]
    tick_ms: u64,
    /// Propose SPLIT mode (state on STATE bottles) instead of JOINED.
    #[arg(long)]
    split: bool,
    /// The code-signing public key file (`pcxses-ac keygen`): refuse MORPHs not signed
    /// with it.
    #[arg(long)]
    code_key: Option<std::path::PathBuf>,
    /// Run computation NAME natively from the WebAssembly module at PATH (SUI ABI).
    #[arg(long, value_name = "NAME=PATH")]
    guest: Vec<String>,
    /// Print a `frame` event of every guest every this many ticks.
    #[arg(long)]
    frames: Option<u64>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum EventFormat {
    /// One JSON object per line.
    Jsonl,
}

/// One computation running here: a built-in counter, or a shipped WebAssembly module.
enum Runner {
    Counter(u64),
    Guest(Box<Guest>),
}

/// The states one computation reported in this session: the last version number, and the
/// recent versions with their states.
#[derive(Default)]
struct Reported {
    last: u32,
    recent: VecDeque<(u32, Vec<u8>)>,
}

/// What one tick produced.
struct Tick {
    /// States to report.
    states: Vec<(String, Vec<u8>)>,
    /// Computations that failed (and were stopped), with the error.
    failed: Vec<(String, String)>,
}

/// The computations this device runs, and which state each reported version carried.
#[derive(Default)]
struct Computations {
    running: BTreeMap<String, Runner>,
    /// Per computation: the states reported in this session.
    versions: BTreeMap<String, Reported>,
    /// Modules this device runs natively, by computation (`--guest`).
    native: BTreeMap<String, Vec<u8>>,
}

fn is_wasm(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm")
}

impl Computations {
    fn insert(&mut self, name: &str, runner: Runner) {
        self.running.insert(name.into(), runner);
        self.versions.remove(name);
    }

    /// Starts a computation this device runs natively, from its initial state.
    fn start(&mut self, name: &str) -> Result<(), String> {
        let runner = match self.native.get(name) {
            Some(wasm) => Runner::Guest(Box::new(
                Guest::load(wasm, GuestLimits::default()).map_err(|e| e.to_string())?,
            )),
            None => Runner::Counter(0),
        };
        self.insert(name, runner);
        Ok(())
    }

    /// Starts an installed computation from its LKGS: the invoked WebAssembly object if
    /// there is one, else a counter.
    fn install(&mut self, install: &Install) -> Result<(), String> {
        let module = install
            .objects
            .iter()
            .find(|o| o.invoke && is_wasm(&o.bytes));
        let runner = match module {
            Some(m) => {
                let mut guest =
                    Guest::load(&m.bytes, GuestLimits::default()).map_err(|e| e.to_string())?;
                if !install.lkgs.is_empty() {
                    guest.restore(&install.lkgs).map_err(|e| e.to_string())?;
                }
                Runner::Guest(Box::new(guest))
            }
            None => Runner::Counter(decode(&install.lkgs)),
        };
        self.insert(&install.computation, runner);
        Ok(())
    }

    /// Runs one tick of every computation; returns the states to report and the
    /// computations that failed (and were stopped).
    fn tick(&mut self) -> Tick {
        let (mut states, mut failed) = (Vec::new(), Vec::new());
        for (name, runner) in self.running.iter_mut() {
            let state = match runner {
                Runner::Counter(count) => {
                    *count += 1;
                    Ok(count.to_le_bytes().to_vec())
                }
                Runner::Guest(g) => g.step().and_then(|()| g.capture()),
            };
            match state {
                Ok(state) => {
                    let r = self.versions.entry(name.clone()).or_default();
                    r.last += 1;
                    r.recent.push_back((r.last, state.clone()));
                    if r.recent.len() > 64 {
                        r.recent.pop_front();
                    }
                    states.push((name.clone(), state));
                }
                Err(e) => failed.push((name.clone(), e.to_string())),
            }
        }
        for (name, _) in &failed {
            self.running.remove(name);
        }
        Tick { states, failed }
    }

    fn state_of(&self, name: &str, version: u32) -> Option<&[u8]> {
        self.versions
            .get(name)?
            .recent
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, s)| &s[..])
    }

    /// The frames of the computations that render one.
    fn frames(&mut self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, runner) in self.running.iter_mut() {
            if let Runner::Guest(g) = runner {
                if let Ok(frame) = g.render() {
                    out.push((name.clone(), frame));
                }
            }
        }
        out
    }
}

/// The counter's count in its state (zero for the empty state).
fn decode(state: &[u8]) -> u64 {
    state
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// `NAME=PATH` pairs: the modules of computations run natively.
fn native_guests(pairs: &[String]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    pairs
        .iter()
        .map(|pair| {
            let (name, path) = pair
                .split_once('=')
                .ok_or_else(|| format!("--guest {pair}: expected NAME=PATH"))?;
            let wasm = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
            Ok((name.to_string(), wasm))
        })
        .collect()
}

fn main() -> ExitCode {
    pcxses_examples::logging::init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pcxses-device: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let epoch = Epoch::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()) << 32;
    let mut config = DeviceConfig::new(&cli.name, seed);
    config.hello_ms = cli.hello_ms;
    config.dead_ms = cli.dead_ms;
    config.mode = if cli.split { Mode::Split } else { Mode::Joined };
    config.code_key = cli
        .code_key
        .as_deref()
        .map(pcxses_examples::keys::verifier)
        .transpose()?;
    let device = Device::new(config, epoch.now());
    let mut shutdown = Shutdown::catch().map_err(|e| e.to_string())?;
    let ex = Arc::new(Executor::new());
    smol::block_on(ex.run(async {
        let agent = cli
            .transport
            .connect(&ex, device, epoch, cli.ac)
            .await
            .map_err(|e| e.to_string())?;
        let mut computations = Computations { native: native_guests(&cli.guest)?, ..Computations::default() };
        let mut out = std::io::stdout().lock();
        let mut print = |line: serde_json::Value| {
            if cli.events.is_some() {
                let _ = writeln!(out, "{line}").and_then(|()| out.flush());
            }
        };
        let mut leaving = false;
        let mut ticks = 0u64;
        let mut next_tick = std::time::Instant::now();
        loop {
            enum Wake {
                Event(Option<DeviceEvent>),
                Tick,
                Stop,
            }
            let wake = async { Wake::Event(agent.events.recv().await.ok()) }
                .or(async {
                    Timer::at(next_tick).await;
                    Wake::Tick
                })
                .or(async {
                    shutdown.next().await;
                    Wake::Stop
                })
                .await;
            match wake {
                Wake::Event(None) => return Err("the agent stopped".into()),
                Wake::Event(Some(event)) => {
                    let state = match &event {
                        DeviceEvent::StateStored { computation, version } => computations.state_of(computation, *version),
                        DeviceEvent::Install(i) => Some(&i.lkgs[..]),
                        _ => None,
                    };
                    print(device_event(&event, state, epoch.now()));
                    match event {
                        DeviceEvent::Joined { run, .. } => {
                            for c in run {
                                if let Err(error) = computations.start(&c) {
                                    print(serde_json::json!({"event": "guest_failed", "computation": c, "error": error}));
                                }
                            }
                        }
                        DeviceEvent::Install(i) => {
                            let started = match computations.install(&i) {
                                Ok(()) => true,
                                Err(error) => {
                                    print(serde_json::json!({"event": "guest_failed", "computation": i.computation, "error": error}));
                                    false
                                }
                            };
                            let _ = agent.commands.send(DeviceCommand::AnswerInstall { id: i.id, started }).await;
                        }
                        DeviceEvent::Stop { computation, .. } => {
                            computations.running.remove(&computation);
                        }
                        DeviceEvent::Left if leaving => break,
                        _ => {}
                    }
                }
                Wake::Tick => {
                    next_tick += Duration::from_millis(cli.tick_ms);
                    ticks += 1;
                    let Tick { states, failed } = computations.tick();
                    for (computation, state) in states {
                        let _ = agent.commands.send(DeviceCommand::SetState { computation, state }).await;
                    }
                    for (computation, error) in failed {
                        // A runaway or trapping guest is stopped and reported; the device
                        // carries on.
                        print(serde_json::json!({"event": "guest_failed", "computation": computation, "error": error}));
                    }
                    if cli.frames.is_some_and(|every| ticks.is_multiple_of(every)) {
                        for (computation, text) in computations.frames() {
                            print(serde_json::json!({"event": "frame", "computation": computation, "text": text}));
                        }
                    }
                }
                Wake::Stop => {
                    if leaving {
                        break;
                    }
                    tracing::info!("leaving");
                    leaving = true;
                    computations.running.clear();
                    let _ = agent.commands.send(DeviceCommand::Leave).await;
                    next_tick = std::time::Instant::now() + Duration::from_secs(3600);
                }
            }
        }
        agent.commands.close();
        let stats = agent.task.await.map_err(|e| e.to_string())?;
        tracing::info!(?stats, "stopped");
        Ok(())
    }))
}
