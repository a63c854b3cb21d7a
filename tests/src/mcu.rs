//! The device firmware booted in QEMU for the end-to-end tests: a board provisioned as one
//! of a [`World`]'s devices, and the bridge that carries its UART to the AC.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use pcxses_demo::artifacts;
use pcxses_demo::mcu::{self, Mcu, Provision};

use crate::programs::{bridge_executable, Proc, World};

/// The firmware image for `mcu` with `features` and its event lines, built once per test
/// binary.
pub fn firmware(mcu: Mcu, features: &[&str]) -> PathBuf {
    static BUILT: OnceLock<Mutex<BTreeMap<String, PathBuf>>> = OnceLock::new();
    let key = format!("{}:{}", mcu.target, features.join(","));
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap();
    built
        .entry(key)
        .or_insert_with(|| {
            let features = [&["semihosting"], features].concat();
            artifacts::firmware(mcu.target, &features).expect("the firmware builds")
        })
        .clone()
}

/// A board running the firmware: QEMU, whose standard output is the firmware's events.
pub struct Board {
    /// QEMU; killing it is the board's death.
    pub qemu: Proc,
    /// The board's UART.
    pub pty: PathBuf,
}

impl Board {
    /// Boots `image` on `mcu`'s board, provisioned with `provision` (its record written
    /// beside `w`'s configuration). Fails, saying how to install it, where QEMU is missing.
    pub fn boot(w: &World, mcu: Mcu, image: &Path, provision: &Provision) -> Board {
        if let Err(missing) = mcu::qemu_available() {
            panic!("{missing}");
        }
        let record = w.dir.join(format!("{}.provision", provision.name));
        std::fs::write(&record, provision.to_bytes()).unwrap();
        let qemu = Proc::spawn(&mut mcu::qemu_command(mcu, image, &record));
        let line = qemu.wait_logged("redirected to");
        let pty = mcu::pty_in(&line).expect("QEMU names its pseudo-terminal");
        Board { qemu, pty }
    }
}

/// `pcxses-bridge` from `serial` to the AC at `ac`, with `extra` arguments, once it
/// bridges.
pub fn bridge(serial: &Path, ac: &str, extra: &[&str]) -> Proc {
    let serial = serial.to_str().expect("a UTF-8 path");
    let bridge = Proc::spawn(
        Command::new(bridge_executable())
            .args(["--serial", serial, "--ac", ac])
            .args(extra),
    );
    bridge.wait_logged("bridging");
    bridge
}
