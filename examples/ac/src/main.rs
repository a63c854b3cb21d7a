//! The Area Controller daemon.
//!
//! `pcxses-ac --config ac.toml [--transport tcp|udp|quic] [--events jsonl]` serves the
//! devices of the configuration, once the configuration and everything it names have been
//! checked: it refuses to start, listing every problem, otherwise. Subcommands:
//!
//! - `check --config ac.toml` runs those checks alone, binding and writing nothing, and
//!   exits non-zero listing every problem, or prints a short summary;
//! - `journal check FILE` summarises a journal (its snapshot, records, devices, LKGS, a
//!   record cut short at its end) and exits non-zero, with the byte offset, on damage;
//! - `journal dump FILE` prints every record of a journal as a JSON line, with its offset;
//! - `add-object` stores an object in a repository, `keygen` makes a code-signing key pair,
//!   `psk` per-device pre-shared keys, `certs` a development PKI for QUIC.
//!
//! The journal tools only read the file. Logs go to stderr (`RUST_LOG` filters them); with
//! `--events jsonl`, every protocol event is one JSON object on stdout. SIGINT or SIGTERM
//! stops it cleanly. With `--status-listen ADDR` (or `[status] listen` in the
//! configuration) it serves `/status` (JSON) and `/metrics` (Prometheus) over HTTP, and
//! `pcxses-ac status --addr ADDR` (or `--config FILE`) shows that status as tables.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pcxses_ac::config::AcConfig;
use pcxses_ac::daemon::{self, DaemonArgs};
use pcxses_ac::{check, http, inspect, repository, table};
use pcxses_program::keys;

/// The allocator. What the daemon frees once it has started (the registry as read from the
/// configuration, once the controller holds it) is small blocks, one or more per device
/// and computation, below the controller's: glibc's allocator keeps them resident,
/// jemalloc's gives them back to the system within seconds (see [`return_freed_memory`]),
/// and it packs small blocks tighter.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    run: DaemonArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Checks a configuration and everything it names (repository and digests, key files,
    /// journal) as the daemon does at start, without binding or writing anything; lists
    /// every problem and exits non-zero if there is any.
    Check {
        /// The configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Reads a journal without changing it.
    #[command(subcommand)]
    Journal(JournalCommand),
    /// Creates a code-signing key pair: DIR/code-signing.key (secret, for the AC's
    /// `code_signing_key`) and DIR/code-signing.pub (for devices' `--code-key`).
    Keygen {
        /// Where to write the two files.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Creates a development PKI for `--transport quic`: DIR/ca.pem and ca.key (the CA
    /// for the AC's `--device-ca` and the devices' `--ac-ca`), DIR/ac.pem and ac.key (the
    /// AC's, valid for `ac`, `localhost` and 127.0.0.1), and DIR/NAME.pem and NAME.key for
    /// each device.
    Certs {
        /// Where to write the files.
        #[arg(long)]
        dir: PathBuf,
        /// The devices' names.
        #[arg(required = true)]
        devices: Vec<String>,
    },
    /// Creates a pre-shared key per device, DIR/NAME.psk: give it to the device
    /// (`--psk`) and name it in the device's `psk_file` in the configuration.
    Psk {
        /// Where to write the files.
        #[arg(long)]
        dir: PathBuf,
        /// The devices' names.
        #[arg(required = true)]
        devices: Vec<String>,
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
    /// Shows a running AC's devices and computations as tables, from its `/status`
    /// endpoint (`[status] listen` in its configuration, or `--status-listen`).
    Status {
        /// The endpoint's address.
        #[arg(long, conflicts_with = "config", required_unless_present = "config")]
        addr: Option<SocketAddr>,
        /// The AC's configuration file: its `[status] listen` address.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print the JSON document instead of tables.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum JournalCommand {
    /// Summarises a journal: its snapshot, records, devices and LKGS, and a record cut short
    /// at its end (which the AC drops at start); exits non-zero on damage.
    Check {
        /// The journal file.
        file: PathBuf,
    },
    /// Prints every record of a journal, in order, as one JSON object a line with its byte
    /// offset and decoded fields.
    Dump {
        /// The journal file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    pcxses_program::logging::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Keygen { dir }) => {
            keys::generate(&dir, "code-signing").map(|public| println!("{public}"))
        }
        Some(Command::Certs { dir, devices }) => {
            let devices: Vec<&str> = devices.iter().map(String::as_str).collect();
            pcxses_transport_quic::certs::write_dev_pki(&dir, &devices).map_err(|e| e.to_string())
        }
        Some(Command::Psk { dir, devices }) => {
            devices.iter().try_for_each(|d| keys::generate_psk(&dir, d))
        }
        Some(Command::AddObject {
            repository,
            id,
            file,
        }) => add_object(&repository, &id, &file),
        Some(Command::Check { config }) => check_config(&config),
        Some(Command::Journal(JournalCommand::Check { file })) => inspect::check(&file)
            .map(|s| println!("{}\n{s}", file.display()))
            .map_err(|e| e.to_string()),
        Some(Command::Journal(JournalCommand::Dump { file })) => dump(&file),
        Some(Command::Status { addr, config, json }) => status(addr, config.as_deref(), json),
        None => {
            return_freed_memory();
            daemon::run(cli.run)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pcxses-ac: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Starts the allocator's background thread (one), which gives freed memory back to the
/// system after a few seconds even while the daemon allocates nothing.
fn return_freed_memory() {
    #[cfg(not(target_env = "msvc"))]
    if let Err(e) = tikv_jemalloc_ctl::max_background_threads::write(1)
        .and_then(|()| tikv_jemalloc_ctl::background_thread::write(true))
    {
        tracing::warn!(%e, "no allocator thread: freed memory goes back to the system only as the AC allocates");
    }
}

fn status(addr: Option<SocketAddr>, config: Option<&Path>, json: bool) -> Result<(), String> {
    let addr = match (addr, config) {
        (Some(addr), _) => addr,
        (None, Some(path)) => AcConfig::status_addr(path)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{}: no [status] listen address", path.display()))?,
        (None, None) => return Err("give --addr or --config".into()),
    };
    if json {
        let text = http::fetch(addr, "/status").map_err(|e| e.to_string())?;
        println!("{text}");
    } else {
        let doc = http::fetch_status(addr).map_err(|e| e.to_string())?;
        print!("{}", table::render(&doc));
    }
    Ok(())
}

fn add_object(repo: &std::path::Path, id: &str, file: &std::path::Path) -> Result<(), String> {
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let digest = repository::add(repo, id, &bytes).map_err(|e| e.to_string())?;
    println!("{id} {digest} {} bytes", bytes.len());
    Ok(())
}

fn check_config(path: &Path) -> Result<(), String> {
    let now = pcxses_core::Epoch::new().now();
    let checked = check::check(path, now).map_err(|e| e.to_string())?;
    println!("{}: ok: {}", path.display(), checked.summary());
    Ok(())
}

fn dump(path: &Path) -> Result<(), String> {
    let lines = inspect::dump(path).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    lines
        .iter()
        .try_for_each(|line| writeln!(out, "{line}"))
        .and_then(|()| out.flush())
        .map_err(|e| format!("stdout: {e}"))
}
