//! A load generator: many devices from one process, against a running AC over UDP.
//!
//! `pcxses-load config --devices N --dir DIR` writes an AC configuration (and its object
//! repository) registering devices `load-000000…`, each running one computation: as one
//! device group and one computation group, or with `--registry entries` one entry each.
//! `pcxses-load run --ac ADDR --devices N --hello-ms MS --seconds S [--ac-pid PID]` then
//! runs N real `Device` state machines over a few UDP sockets, and prints one JSON
//! summary: HELLOs sent and answered per second, bytes per second to and from the AC,
//! false deaths (devices that lost their session or fenced), and the AC's RSS (now and at
//! its peak), threads, CPU share and CPU time per HELLO answered, read from `/proc/PID`
//! (`--samples FILE` writes every 500 ms sample of the run). `pcxses-load morphs --events FILE` reads the events an AC printed
//! (`pcxses-ac --events jsonl`) and counts its MORPHs, and the most started in any
//! one-second window, the figure its MORPH pacing bounds. `pcxses-load start --config FILE
//! [--ac PATH]` times an AC from launch to `listening` and reads its memory then, at its
//! peak, and once it has settled.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use pcxses_load::config::{write_config, JournalMode, Registry};
use pcxses_load::morphs::morphs;
use pcxses_load::run::{run, RunArgs};
use pcxses_load::start::start;

#[derive(Parser)]
#[command(version, about = "Many PCXSES devices from one process")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes an AC configuration for N devices into DIR.
    Config {
        /// Devices to register.
        #[arg(long)]
        devices: usize,
        /// List them as one device group and one computation group, or as one entry each.
        #[arg(long, value_enum, default_value = "groups")]
        registry: Registry,
        /// Where to write `ac.toml` and the repository.
        #[arg(long)]
        dir: PathBuf,
        /// The address the AC is to listen on.
        #[arg(long, default_value = "127.0.0.1:4700")]
        listen: SocketAddr,
        /// Give the AC a journal (`ac.journal`), synced (`sync`) or left to the OS (`os`)
        /// before each acknowledgement.
        #[arg(long, value_enum)]
        journal: Option<JournalMode>,
        /// Pace MORPHs: at most this many starts per second (with a burst of as many).
        #[arg(long)]
        morphs_per_s: Option<u32>,
    },
    /// Runs N devices against an AC.
    Run(RunArgs),
    /// Counts the MORPHs in an AC's JSON event lines, and the most started in any second.
    Morphs {
        /// The file of events (`pcxses-ac --events jsonl`).
        #[arg(long)]
        events: PathBuf,
    },
    /// Starts an AC, times it to `listening` and reads its memory then and once it settled.
    Start {
        /// The AC's configuration.
        #[arg(long)]
        config: PathBuf,
        /// The AC's executable.
        #[arg(long, default_value = "pcxses-ac")]
        ac: PathBuf,
        /// Seconds after `listening` to read its memory again.
        #[arg(long, default_value_t = 15)]
        settle_s: u64,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Config {
            devices,
            registry,
            dir,
            listen,
            journal,
            morphs_per_s,
        } => write_config(devices, registry, &dir, listen, journal, morphs_per_s),
        Command::Run(args) => run(args),
        Command::Morphs { events } => morphs(&events),
        Command::Start {
            config,
            ac,
            settle_s,
        } => start(&ac, &config, Duration::from_secs(settle_s)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pcxses-load: {e}");
            ExitCode::FAILURE
        }
    }
}
