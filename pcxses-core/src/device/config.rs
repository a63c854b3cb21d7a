//! The device agent's configuration.

use alloc::string::String;

use crate::limits::{Limits, MAX_HOSTED};
use crate::psk::Psk;
use crate::signing::CodeVerifier;
use crate::wire::bottle::StateMode;

/// Everything a device agent is configured with. Fields are public;
/// [`DeviceConfig::new`] gives the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    /// The device's name in the AC's registry.
    pub name: String,
    /// Seed of the internal PRNG, which draws each incarnation's join nonce and the
    /// retry jitter. It must differ on every boot (a hardware RNG, or a boot counter
    /// mixed with the device's serial number), or two incarnations share a nonce; on an
    /// operating system, [`crate::os_seed`] gives one.
    pub seed: u64,
    /// Proposed state mode.
    pub mode: StateMode,
    /// Proposed HELLO interval.
    pub hello_ms: u32,
    /// Proposed dead interval.
    pub dead_ms: u32,
    /// Decoding limits; `limits.max_bottle` is announced to the AC as the largest bottle
    /// this device accepts.
    pub limits: Limits,
    /// State chunks in flight.
    pub window: u16,
    /// First retransmission timeout of state chunks and GOOD_BYE.
    pub rto_ms: u32,
    /// Largest retransmission timeout.
    pub rto_max_ms: u32,
    /// First GOOD_MORNING retry interval; doubles, with jitter, up to `join_retry_max_ms`.
    pub join_retry_ms: u32,
    /// Largest GOOD_MORNING retry interval.
    pub join_retry_max_ms: u32,
    /// How long the application may take to answer an install before the MORPH fails.
    pub install_timeout_ms: u32,
    /// Most computations this device runs at once.
    pub max_hosted: usize,
    /// Most outputs queued between drains.
    pub outbox_limit: usize,
    /// The code-signing public key this device was provisioned with. When set, a MORPH
    /// whose manifest is unsigned or not signed by it is refused before it is parsed.
    pub code_key: Option<CodeVerifier>,
    /// The key this device shares with the AC, for pre-shared-key mode ([`crate::psk`]):
    /// when set, the device answers the AC's challenge and seals every bottle, and refuses
    /// any bottle of the AC that is not sealed with the session key.
    pub psk: Option<Psk>,
}

impl DeviceConfig {
    /// Defaults: JOINED mode, HELLO every second, dead after three, 1200-byte bottles.
    pub fn new(name: &str, seed: u64) -> DeviceConfig {
        DeviceConfig {
            name: name.into(),
            seed,
            mode: StateMode::InHello,
            hello_ms: 1_000,
            dead_ms: 3_000,
            limits: Limits::DEFAULT,
            window: 16,
            rto_ms: 200,
            rto_max_ms: 3_000,
            join_retry_ms: 250,
            join_retry_max_ms: 8_000,
            install_timeout_ms: 2_000,
            max_hosted: MAX_HOSTED,
            outbox_limit: 4_096,
            code_key: None,
            psk: None,
        }
    }
}
