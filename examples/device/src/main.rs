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
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::process::ExitCode;

use clap::Parser;
use pcxses_device::agent::{self, AgentArgs};

fn main() -> ExitCode {
    pcxses_program::logging::init();
    match agent::run(AgentArgs::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pcxses-device: {e}");
            ExitCode::FAILURE
        }
    }
}
