//! The device's provisioning record: who it is and what it trusts, written to the last
//! 4 KiB of code memory apart from the image (by the factory, or by QEMU's `-device
//! loader,file=RECORD,addr=0x3ff000,force-raw=on`), so one image serves every device.
//!
//! The record, little-endian, 128 bytes:
//!
//! | offset | bytes | field |
//! | --- | --- | --- |
//! | 0 | 4 | magic `PCXP` |
//! | 4 | 1 | version, 1 |
//! | 5 | 1 | length of the name, 1 to 32 |
//! | 6 | 32 | the device's name in the AC's registry, UTF-8, zero-padded |
//! | 38 | 1 | flags: bit 0, a pre-shared key follows; bit 1, a code-signing key follows |
//! | 39 | 1 | zero |
//! | 40 | 32 | the pre-shared key |
//! | 72 | 32 | the code-signing public key (Ed25519) |
//! | 104 | 8 | the seed: the firmware mixes in the time its boot took, a weak source alone; whoever writes the record at boot (as the tests and the demo do) writes a new one each time |
//! | 112 | 4 | proposed HELLO interval, ms |
//! | 116 | 4 | proposed dead interval, ms |
//! | 120 | 4 | how often the computations step, ms |
//! | 124 | 4 | report a `frame` of each WebAssembly computation every this many steps; 0: never |

use core::time::Duration;

use pcxses_core::{DeviceConfig, MAX_NAME_LEN};

/// Bytes of a record.
pub const LEN: usize = 128;

/// The record as read: the device's configuration, and how often its computations step.
pub struct Provision {
    /// The device's configuration.
    pub config: DeviceConfig,
    /// How often the computations step.
    pub tick: Duration,
    /// Every how many steps a WebAssembly computation's frame is reported; 0: never.
    pub frames: u32,
}

/// Why the record cannot be used.
pub enum Invalid {
    /// No record: the magic or the version is wrong.
    Missing,
    /// The name is empty, too long or not UTF-8.
    Name,
    /// A key is present that this build cannot use (a feature left out).
    Key(&'static str),
    /// An interval is zero.
    Interval,
}

impl Invalid {
    /// A short reason for the event line.
    pub fn as_str(&self) -> &'static str {
        match self {
            Invalid::Missing => "no provisioning record",
            Invalid::Name => "the name is empty, too long or not UTF-8",
            Invalid::Key(what) => what,
            Invalid::Interval => "an interval is zero",
        }
    }
}

/// Reads the record at the start of the `PROVISION` region.
pub fn read() -> Result<Provision, Invalid> {
    unsafe extern "C" {
        /// The start of the `PROVISION` region (`memory.x`).
        static _provision: [u8; LEN];
    }
    // SAFETY: `_provision` is the start of the 4 KiB `PROVISION` region of code memory,
    // which nothing writes while the firmware runs; volatile, as the image does not hold it.
    let bytes = unsafe { core::ptr::read_volatile(&raw const _provision) };
    parse(&bytes)
}

fn parse(b: &[u8; LEN]) -> Result<Provision, Invalid> {
    let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let ms = |at: usize| match u32_at(at) {
        0 => Err(Invalid::Interval),
        ms => Ok(Duration::from_millis(ms.into())),
    };
    if &b[..4] != b"PCXP" || b[4] != 1 {
        return Err(Invalid::Missing);
    }
    let len = usize::from(b[5]);
    if len == 0 || len > MAX_NAME_LEN {
        return Err(Invalid::Name);
    }
    let name = core::str::from_utf8(&b[6..6 + len]).map_err(|_| Invalid::Name)?;
    let mut seed = [0; 8];
    seed.copy_from_slice(&b[104..112]);
    let mut config = DeviceConfig::microcontroller(name, u64::from_le_bytes(seed));
    config.max_hosted = crate::computations::MAX_HOSTED;
    config.hello = ms(112)?;
    config.dead = ms(116)?;
    if b[38] & 1 != 0 {
        #[cfg(feature = "psk")]
        {
            let psk: [u8; 32] = b[40..72].try_into().map_err(|_| Invalid::Missing)?;
            config.psk = Some(pcxses_core::psk::Psk(psk));
        }
        #[cfg(not(feature = "psk"))]
        return Err(Invalid::Key(
            "a pre-shared key, but the build has no `psk` feature",
        ));
    }
    if b[38] & 2 != 0 {
        #[cfg(feature = "signing")]
        {
            let public: [u8; 32] = b[72..104].try_into().map_err(|_| Invalid::Missing)?;
            let verifier = pcxses_core::signing::CodeVerifier::from_public(public).ok_or(
                Invalid::Key("a code-signing key that is not an Ed25519 key"),
            )?;
            config.code_key = Some(verifier);
        }
        #[cfg(not(feature = "signing"))]
        return Err(Invalid::Key(
            "a code-signing key, but the build has no `signing` feature",
        ));
    }
    Ok(Provision {
        config,
        tick: ms(120)?,
        frames: u32_at(124),
    })
}
