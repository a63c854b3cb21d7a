//! An attacker for testing one's own AC on this host.
//!
//! `pcxses-attack --target 127.0.0.1:PORT --transport tcp|udp|quic [--hold N] [--junk N]
//! [--forge N] [--replay FILE] [--duration-ms MS]` runs the attacks asked for at once
//! until the duration ends: it holds up to N connections (TCP: each sends a frame header
//! and one byte, then nothing; QUIC: a certified stranger, `--ac-ca`, `--cert`, `--key`,
//! claiming `--claim`), sends junk datagrams or frames from many source ports, forged
//! bottles for made-up sessions (CHALLENGE with issue time 2^64−1, MORPH_FAIL with id
//! 2^32−1, REJECT, GOOD_BYE and HELLO guessing session ids; also to each `--device`), and
//! the bottles of a recording. Then it prints one JSON line: what it sent, per kind. It
//! refuses any address that is not loopback. Logs go to stderr (`RUST_LOG` filters them).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::process::ExitCode;

use clap::Parser;
use pcxses_attack::run::{run, AttackArgs};

fn main() -> ExitCode {
    pcxses_program::logging::init();
    let args = AttackArgs::parse();
    tracing::info!(target = %args.target, transport = ?args.transport, "attacking");
    match run(&args) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pcxses-attack: {e}");
            ExitCode::FAILURE
        }
    }
}
