//! A microcontroller in the area: the device firmware (`examples/firmware`) on an emulated
//! Cortex-M board in QEMU. Its UART is a pseudo-terminal, which `pcxses-bridge` carries to
//! the AC; its events come on QEMU's standard output through semihosting; its name, keys
//! and intervals come in a provisioning record QEMU writes to the board's code memory
//! beside the image.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The emulator.
pub const QEMU: &str = "qemu-system-arm";

/// How to install [`QEMU`] where it is missing.
pub const INSTALL_QEMU: &str = "install QEMU's ARM system emulator: `sudo apt-get install \
qemu-system-arm` (Debian, Ubuntu), `sudo dnf install qemu-system-arm` (Fedora), `brew install \
qemu` (macOS)";

/// A Cortex-M target the firmware builds for, and the board QEMU runs it on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mcu {
    /// The Rust target.
    pub target: &'static str,
    /// QEMU's machine.
    pub machine: &'static str,
}

/// Cortex-M4F on the MPS2 AN386 board.
pub const CORTEX_M4: Mcu = Mcu {
    target: "thumbv7em-none-eabihf",
    machine: "mps2-an386",
};

/// ARMv6-M code (Cortex-M0/M0+) on the MPS2 AN385 board, a Cortex-M3, which runs it.
pub const CORTEX_M0_PLUS: Mcu = Mcu {
    target: "thumbv6m-none-eabi",
    machine: "mps2-an385",
};

/// Where the firmware reads its provisioning record (`examples/firmware/memory.x`).
pub const RECORD_ADDR: u32 = 0x003f_f000;

/// What a device is provisioned with; [`Provision::to_bytes`] is the record the firmware
/// reads (`examples/firmware/src/provision.rs` gives its layout).
#[derive(Clone, Debug)]
pub struct Provision {
    /// The device's name in the AC's registry, at most 32 bytes.
    pub name: String,
    /// The key it shares with the AC (pre-shared-key mode).
    pub psk: Option<[u8; 32]>,
    /// The code-signing public key MORPHs must be signed with.
    pub code_key: Option<[u8; 32]>,
    /// This boot's seed: a new one for every boot.
    pub seed: u64,
    /// Proposed HELLO interval, ms.
    pub hello_ms: u32,
    /// Proposed dead interval, ms.
    pub dead_ms: u32,
    /// How often the computations step, ms.
    pub tick_ms: u32,
    /// Report a `frame` event of each WebAssembly computation every this many steps; 0:
    /// never.
    pub frames: u32,
}

impl Provision {
    /// The record, 128 bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let name = self.name.as_bytes();
        let mut r = Vec::with_capacity(128);
        r.extend_from_slice(b"PCXP");
        r.push(1);
        r.push(name.len() as u8);
        r.extend_from_slice(name);
        r.resize(38, 0);
        r.push(u8::from(self.psk.is_some()) | u8::from(self.code_key.is_some()) << 1);
        r.push(0);
        r.extend_from_slice(&self.psk.unwrap_or_default());
        r.extend_from_slice(&self.code_key.unwrap_or_default());
        r.extend_from_slice(&self.seed.to_le_bytes());
        for v in [self.hello_ms, self.dead_ms, self.tick_ms, self.frames] {
            r.extend_from_slice(&v.to_le_bytes());
        }
        r
    }
}

/// Whether [`QEMU`] runs here; if not, what to do about it.
pub fn qemu_available() -> Result<(), String> {
    match Command::new(QEMU)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        _ => Err(format!("{QEMU} is not installed: {INSTALL_QEMU}")),
    }
}

/// The QEMU command that boots `image` on `mcu`'s board with the provisioning record in
/// the file `record`: its UART on a new pseudo-terminal (named on standard output:
/// [`pty_in`]), its events on standard output.
pub fn qemu_command(mcu: Mcu, image: &Path, record: &Path) -> Command {
    let mut cmd = Command::new(QEMU);
    cmd.args(["-M", mcu.machine, "-nographic", "-monitor", "none"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(["-serial", "pty", "-kernel"])
        .arg(image)
        .arg("-device")
        .arg(format!(
            "loader,file={},addr={RECORD_ADDR:#x},force-raw=on",
            record.display()
        ));
    cmd
}

/// The pseudo-terminal QEMU names in a line of its output (`char device redirected to
/// /dev/pts/3 (label serial0)`).
pub fn pty_in(line: &str) -> Option<PathBuf> {
    let rest = line.split("redirected to ").nth(1)?;
    let path = rest.split_whitespace().next()?;
    path.starts_with("/dev/").then(|| PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_has_the_firmware_layout() {
        let p = Provision {
            name: "gamma".into(),
            psk: None,
            code_key: Some([7; 32]),
            seed: 0x0102_0304_0506_0708,
            hello_ms: 200,
            dead_ms: 1500,
            tick_ms: 50,
            frames: 3,
        };
        let r = p.to_bytes();
        assert_eq!(r.len(), 128);
        assert_eq!(&r[..6], b"PCXP\x01\x05");
        assert_eq!(&r[6..11], b"gamma");
        assert_eq!(r[38], 2);
        assert_eq!(&r[72..104], &[7; 32]);
        assert_eq!(r[104], 8);
        assert_eq!(&r[112..116], &200u32.to_le_bytes());
        assert_eq!(&r[120..124], &50u32.to_le_bytes());
        assert_eq!(&r[124..], &3u32.to_le_bytes());
    }

    #[test]
    fn the_pseudo_terminal_is_read_from_qemus_line() {
        let line = "char device redirected to /dev/pts/3 (label serial0)";
        assert_eq!(pty_in(line), Some(PathBuf::from("/dev/pts/3")));
        assert_eq!(pty_in("{\"event\":\"memory\"}"), None);
    }
}
