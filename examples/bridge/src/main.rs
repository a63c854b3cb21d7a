//! The bridge between a serial-line device and an AC: see the library's documentation.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::process::ExitCode;

use clap::Parser;
use pcxses_bridge::BridgeArgs;

fn main() -> ExitCode {
    pcxses_program::logging::init();
    match pcxses_bridge::run(BridgeArgs::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pcxses-bridge: {e}");
            ExitCode::FAILURE
        }
    }
}
