//! The device agent's configuration.

use alloc::string::String;
use core::time::Duration;

use crate::limits::{Limits, MAX_HOSTED};
#[cfg(feature = "psk")]
use crate::psk::Psk;
#[cfg(feature = "signing")]
use crate::signing::CodeVerifier;
use crate::wire::bottle::StateMode;

/// Everything a device agent is configured with. Fields are public; start from the preset
/// that fits the network — [`DeviceConfig::lan`] (also [`DeviceConfig::new`]),
/// [`DeviceConfig::wan`] or [`DeviceConfig::microcontroller`] — and change what differs.
///
/// The HELLO and dead intervals travel in whole milliseconds: they are rounded down, and
/// anything beyond `u32::MAX` milliseconds (about 49.7 days) is sent as that. The AC
/// clamps them into its bounds and raises the dead interval to at least three HELLO
/// intervals; [`crate::DeviceEvent::Joined`] reports what it granted.
///
/// ```
/// use std::time::Duration;
/// use pcxses_core::DeviceConfig;
///
/// let mut config = DeviceConfig::wan("pump", 0x5eed);
/// config.hello = Duration::from_millis(500);
/// config.dead = Duration::from_secs(5);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    /// The device's name in the AC's registry.
    pub name: String,
    /// Seed of the internal PRNG, which draws each incarnation's join nonce and the
    /// retry jitter. It must differ on every boot (a hardware RNG, or a boot counter
    /// mixed with the device's serial number), or two incarnations share a nonce; on an
    /// operating system, [`crate::os_seed`] gives one.
    ///
    #[cfg_attr(not(feature = "std"), doc = "[`crate::os_seed`]: crate#cargo-features")]
    pub seed: u64,
    /// Proposed state mode.
    pub mode: StateMode,
    /// Proposed HELLO interval.
    pub hello: Duration,
    /// Proposed dead interval: how long the AC waits without a HELLO before it declares
    /// this device dead.
    pub dead: Duration,
    /// Decoding limits; `limits.max_bottle` is announced to the AC as the largest bottle
    /// this device accepts.
    pub limits: Limits,
    /// State chunks in flight.
    pub window: u16,
    /// First retransmission timeout of state chunks and GOOD_BYE (1 ms at least).
    pub rto: Duration,
    /// Largest retransmission timeout.
    pub rto_max: Duration,
    /// First GOOD_MORNING retry interval (1 ms at least); doubles, with jitter, up to
    /// `join_retry_max`, and never beyond the dead interval the AC last granted.
    pub join_retry: Duration,
    /// Largest GOOD_MORNING retry interval.
    pub join_retry_max: Duration,
    /// How long the application may take to answer an install before the MORPH fails.
    pub install_timeout: Duration,
    /// Most computations this device runs at once.
    pub max_hosted: usize,
    /// Most outputs queued between drains.
    pub outbox_limit: usize,
    /// The code-signing public key this device was provisioned with. When set, a MORPH
    /// whose manifest is unsigned or not signed by it is refused before it is parsed. With
    /// the `signing` feature only; without it the device checks no signatures.
    #[cfg(feature = "signing")]
    pub code_key: Option<CodeVerifier>,
    /// The key this device shares with the AC, for pre-shared-key mode ([`crate::psk`]):
    /// when set, the device answers the AC's challenge and seals every bottle, and refuses
    /// any bottle of the AC that is not sealed with the session key. With the `psk`
    /// feature only; without it the device sends and accepts plain bottles.
    #[cfg(feature = "psk")]
    pub psk: Option<Psk>,
}

impl DeviceConfig {
    /// The defaults, for a LAN: the same as [`DeviceConfig::lan`].
    pub fn new(name: &str, seed: u64) -> DeviceConfig {
        DeviceConfig::lan(name, seed)
    }

    /// For a wired or otherwise reliable local network with round trips of a few
    /// milliseconds: JOINED mode, HELLO every second, dead after 3 s (a death is detected
    /// within 3 s; the AC's fence interval is then 2.25 s), 1200-byte bottles, 16 state
    /// chunks in flight, retransmissions from 200 ms up to 3 s, GOOD_MORNING retries from
    /// 250 ms up to 8 s, 2 s to answer an install, up to 8 hosted computations and 4,096
    /// queued outputs.
    ///
    /// An occasional lost packet costs nothing: a HELLO whose ack is late goes again after
    /// a quarter interval. Sustained loss does: the device fences itself when the five or
    /// so HELLO round trips of a fence interval all fail, which at 5% loss each way (a
    /// round trip fails one time in ten) happens about once a day, and at 10% about once
    /// an hour. Use [`DeviceConfig::wan`] on such links.
    pub fn lan(name: &str, seed: u64) -> DeviceConfig {
        DeviceConfig {
            name: name.into(),
            seed,
            mode: StateMode::InHello,
            hello: Duration::from_secs(1),
            dead: Duration::from_secs(3),
            limits: Limits::DEFAULT,
            window: 16,
            rto: Duration::from_millis(200),
            rto_max: Duration::from_secs(3),
            join_retry: Duration::from_millis(250),
            join_retry_max: Duration::from_secs(8),
            install_timeout: Duration::from_secs(2),
            max_hosted: MAX_HOSTED,
            outbox_limit: 4_096,
            #[cfg(feature = "signing")]
            code_key: None,
            #[cfg(feature = "psk")]
            psk: None,
        }
    }

    /// For a lossy wide-area link — cellular, long radio hops, congested tunnels — with
    /// round trips up to 300 ms and sustained loss up to 30% in each direction: HELLO
    /// every second, dead after 20 s (fence interval 15 s), retransmissions from 500 ms up
    /// to 8 s, GOOD_MORNING retries from 500 ms up to 1 s; the rest as
    /// [`DeviceConfig::lan`].
    ///
    /// The dead interval is twenty HELLO intervals so that loss alone kills no device.
    /// With 30% loss each way a HELLO round trip fails about half the time (1 − 0.7² =
    /// 0.51), and whenever an ack is late the device sends the next HELLO early, after
    /// twice the round trip (at least a quarter interval):
    ///
    /// * The AC declares a false death only if every HELLO of 20 s is lost on the way:
    ///   at least 20 of them, 0.3²⁰ ≈ 3·10⁻¹¹.
    /// * The device fences itself only if every round trip of its 15 s fence interval
    ///   fails: with a 300 ms round trip, HELLOs go every 600 ms then, 24 of them, 0.51²⁴
    ///   ≈ 10⁻⁷ per HELLO (about once in four months); with 200 ms, 36 of them, 3·10⁻¹¹.
    /// * A join whose answers are lost is retried about every second, some 20 times
    ///   before the AC's dead timer for the new session runs out (0.51²⁰ ≈ 10⁻⁶).
    ///
    /// The price is a death detected after 20 s instead of 3 s, and a GOOD_MORNING a
    /// second while the AC is unreachable. Over longer round trips (a geostationary
    /// satellite) HELLOs no longer go early and the device fences a few times a day at
    /// 30% loss: raise `dead` there.
    pub fn wan(name: &str, seed: u64) -> DeviceConfig {
        DeviceConfig {
            hello: Duration::from_secs(1),
            dead: Duration::from_secs(20),
            rto: Duration::from_millis(500),
            rto_max: Duration::from_secs(8),
            join_retry: Duration::from_millis(500),
            join_retry_max: Duration::from_secs(1),
            ..DeviceConfig::lan(name, seed)
        }
    }

    /// For a microcontroller with tens of kilobytes of RAM, often on a duty-cycled radio
    /// that loses up to 10% of packets: HELLO every 3 s, dead after 20 s (fence interval
    /// 15 s), [`Limits::MICROCONTROLLER`] (1200-byte bottles, 4 KiB of state, 64 KiB per
    /// MORPH stream), 4 state chunks in
    /// flight, retransmissions from 500 ms up to 8 s, GOOD_MORNING retries from 1 s up to
    /// 5 s, 10 s to answer an install (flash is slow to write), at most 2 hosted
    /// computations and 32 queued outputs.
    ///
    /// HELLOs wake the radio a third as often as on a LAN. Until the first ack of a session
    /// tells the round trip, HELLOs go at the full interval: five of them fit in the fence
    /// interval, so that at 10% loss each way fewer than one session in a thousand fences
    /// itself before its first ack (0.19⁵); afterwards HELLOs go early when acks are late,
    /// and loss alone does not fence the device. Give the device the same `max_hosted` in
    /// the AC's registry ([`crate::ControllerConfig::microcontroller`] does).
    ///
    #[cfg_attr(
        not(feature = "controller"),
        doc = "[`crate::ControllerConfig::microcontroller`]: crate#cargo-features"
    )]
    pub fn microcontroller(name: &str, seed: u64) -> DeviceConfig {
        DeviceConfig {
            hello: Duration::from_secs(3),
            dead: Duration::from_secs(20),
            limits: Limits::MICROCONTROLLER,
            window: 4,
            rto: Duration::from_millis(500),
            rto_max: Duration::from_secs(8),
            join_retry: Duration::from_secs(1),
            join_retry_max: Duration::from_secs(5),
            install_timeout: Duration::from_secs(10),
            max_hosted: 2,
            outbox_limit: 32,
            ..DeviceConfig::lan(name, seed)
        }
    }
}
