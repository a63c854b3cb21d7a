//! The Area Controller daemon.
//!
//! `pcxses-ac --config ac.toml [--transport tcp|udp] [--events jsonl]` serves the devices
//! of the configuration; `pcxses-ac add-object --repository DIR --id ID FILE` stores an
//! object in a repository. Logs go to stderr (`RUST_LOG` filters them); with
//! `--events jsonl`, every protocol event is one JSON object on stdout. SIGINT or SIGTERM
//! stops it cleanly.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use pcxses_core::{Controller, ControllerEvent, Epoch};
use pcxses_examples::ac_config::AcConfig;
use pcxses_examples::events::{controller_event, Names};
use pcxses_examples::shutdown::Shutdown;
use pcxses_examples::transport::Transport;
use pcxses_examples::{keys, procfs, repository};
use smol::future::FutureExt;
use smol::{Executor, Timer};

#[derive(Parser)]
#[command(
    version,
    about = "The PCXSES Area Controller",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: Run,
}

#[derive(Args)]
struct Run {
    /// The configuration file (settings and device registry).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The transport to serve on.
    #[arg(long, value_enum, default_value = "udp")]
    transport: Transport,
    /// Print protocol events on stdout in this format.
    #[arg(long, value_enum)]
    events: Option<EventFormat>,
    /// Listen here instead of the configured address.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// With `--events`, print a `stats` event this often: counters, RSS and threads.
    #[arg(long)]
    stats_ms: Option<u64>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum EventFormat {
    /// One JSON object per line.
    Jsonl,
}

#[derive(Subcommand)]
enum Command {
    /// Creates a code-signing key pair: DIR/code-signing.key (secret, for the AC's
    /// `code_signing_key`) and DIR/code-signing.pub (for devices' `--code-key`).
    Keygen {
        /// Where to write the two files.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Stores a file as an object of a repository (created if missing).
    AddObject {
        /// The repository directory.
        #[arg(long)]
        repository: PathBuf,
        /// The object's id.
        #[arg(long)]
        id: String,
        /// The file to store.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    pcxses_examples::logging::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Keygen { dir }) => {
            keys::generate(&dir, "code-signing").map(|public| println!("{public}"))
        }
        Some(Command::AddObject {
            repository,
            id,
            file,
        }) => add_object(&repository, &id, &file),
        None => run(cli.run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pcxses-ac: {e}");
            ExitCode::FAILURE
        }
    }
}

fn add_object(repo: &std::path::Path, id: &str, file: &std::path::Path) -> Result<(), String> {
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let digest = repository::add(repo, id, &bytes).map_err(|e| e.to_string())?;
    println!("{id} {digest} {} bytes", bytes.len());
    Ok(())
}

fn run(args: Run) -> Result<(), String> {
    let path = args.config.ok_or("--config is required")?;
    let config = AcConfig::load(&path).map_err(|e| e.to_string())?;
    let repo = repository::load(&config.repository).map_err(|e| e.to_string())?;
    let names = Names::new(&config.controller);
    let epoch = Epoch::new();
    let mut controller =
        Controller::new(config.controller, repo, epoch.now()).map_err(|e| e.to_string())?;
    if let Some(path) = &config.code_signing_key {
        controller = controller.with_code_signer(keys::signer(path)?);
    }
    let mut shutdown = Shutdown::catch().map_err(|e| e.to_string())?;
    let listen = args.listen.unwrap_or(config.listen);
    // Everything runs on this thread: the protocol, the sockets and the event output.
    let ex = Arc::new(Executor::new());
    smol::block_on(ex.run(async {
        let ac = args
            .transport
            .serve(&ex, controller, epoch, listen)
            .await
            .map_err(|e| format!("{listen}: {e}"))?;
        tracing::info!(addr = %ac.local_addr, transport = ?args.transport, "serving");
        let mut out = std::io::stdout().lock();
        if args.events.is_some() {
            let line = serde_json::json!({"event": "listening", "addr": ac.local_addr.to_string()});
            let _ = writeln!(out, "{line}").and_then(|()| out.flush());
        }
        let period = args.stats_ms.map(std::time::Duration::from_millis);
        let mut next_stats = period.map(|p| std::time::Instant::now() + p);
        loop {
            enum Wake {
                Event(ControllerEvent),
                Stats,
                Stop,
            }
            let wake = async { ac.events.recv().await.map_or(Wake::Stop, Wake::Event) }
                .or(async {
                    match next_stats {
                        Some(at) => Timer::at(at).await,
                        None => Timer::never().await,
                    };
                    Wake::Stats
                })
                .or(async {
                    shutdown.next().await;
                    Wake::Stop
                })
                .await;
            match wake {
                Wake::Event(event) => {
                    tracing::debug!(?event);
                    if args.events.is_some() {
                        let _ = writeln!(out, "{}", controller_event(&event, &names))
                            .and_then(|()| out.flush());
                    }
                }
                Wake::Stats => {
                    next_stats = next_stats.zip(period).map(|(at, p)| at + p);
                    let s = *ac.stats.lock().map_err(|e| e.to_string())?;
                    let proc = procfs::status("self");
                    let line = serde_json::json!({
                        "event": "stats", "received": s.received, "rejected": s.rejected(),
                        "malformed": s.malformed, "unknown_session": s.unknown_session,
                        "dropped_transmits": s.dropped_transmits,
                        "rss_kb": proc.map(|p| p.rss_kb), "threads": proc.map(|p| p.threads),
                    });
                    if args.events.is_some() {
                        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
                    }
                }
                Wake::Stop => break,
            }
        }
        tracing::info!("stopping");
        ac.commands.close();
        let stats = ac.task.await.map_err(|e| e.to_string())?;
        tracing::info!(?stats, "stopped");
        Ok(())
    }))
}
