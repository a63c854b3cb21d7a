//! A device agent running a counter computation.
//!
//! `pcxses-device --ac ADDR --name NAME [--transport tcp|udp] [--events jsonl]` joins the
//! AC, runs the computations it is given — each a counter that counts up every tick and
//! whose state is its count — reports their state, and takes over computations the AC
//! moves to it, resuming from their last known good state. SIGINT or SIGTERM makes it
//! leave with GOOD_BYE.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use pcxses_core::device::DeviceCommand;
use pcxses_core::{Device, DeviceConfig, DeviceEvent, Epoch, Mode};
use pcxses_examples::events::device_event;
use pcxses_examples::shutdown::Shutdown;
use pcxses_examples::transport::Transport;
use smol::future::FutureExt;
use smol::{Executor, Timer};

#[derive(Parser)]
#[command(version, about = "A PCXSES device agent running counters")]
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
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum EventFormat {
    /// One JSON object per line.
    Jsonl,
}

/// The counters this device runs, and which count each reported version carried.
#[derive(Default)]
struct Counters {
    running: BTreeMap<String, u64>,
    /// Per computation: versions reported in this session, with their counts (recent).
    versions: BTreeMap<String, (u32, VecDeque<(u32, u64)>)>,
}

impl Counters {
    fn start(&mut self, name: &str, count: u64) {
        self.running.insert(name.into(), count);
        self.versions.remove(name);
    }

    /// Counts one tick; returns the states to report.
    fn tick(&mut self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for (name, count) in self.running.iter_mut() {
            *count += 1;
            let (version, recent) = self.versions.entry(name.clone()).or_default();
            *version += 1;
            recent.push_back((*version, *count));
            if recent.len() > 256 {
                recent.pop_front();
            }
            out.push((name.clone(), *count));
        }
        out
    }

    fn count_of(&self, name: &str, version: u32) -> Option<u64> {
        let (_, recent) = self.versions.get(name)?;
        recent.iter().find(|(v, _)| *v == version).map(|(_, c)| *c)
    }
}

fn decode(state: &[u8]) -> u64 {
    state
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
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
        let mut counters = Counters::default();
        let mut out = std::io::stdout().lock();
        let mut leaving = false;
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
                    let count = match &event {
                        DeviceEvent::StateStored {
                            computation,
                            version,
                        } => counters.count_of(computation, *version),
                        DeviceEvent::Install(i) => Some(decode(&i.lkgs)),
                        _ => None,
                    };
                    if cli.events.is_some() {
                        let _ = writeln!(out, "{}", device_event(&event, count, epoch.now()))
                            .and_then(|()| out.flush());
                    }
                    match event {
                        DeviceEvent::Joined { run, .. } => {
                            for c in run {
                                counters.start(&c, 0);
                            }
                        }
                        DeviceEvent::Install(i) => {
                            counters.start(&i.computation, decode(&i.lkgs));
                            let _ = agent
                                .commands
                                .send(DeviceCommand::AnswerInstall {
                                    id: i.id,
                                    started: true,
                                })
                                .await;
                        }
                        DeviceEvent::Stop { computation, .. } => {
                            counters.running.remove(&computation);
                        }
                        DeviceEvent::Left if leaving => break,
                        _ => {}
                    }
                }
                Wake::Tick => {
                    next_tick += Duration::from_millis(cli.tick_ms);
                    for (computation, count) in counters.tick() {
                        let state = count.to_le_bytes().to_vec();
                        let _ = agent
                            .commands
                            .send(DeviceCommand::SetState { computation, state })
                            .await;
                    }
                }
                Wake::Stop => {
                    if leaving {
                        break;
                    }
                    tracing::info!("leaving");
                    leaving = true;
                    counters.running.clear();
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
