//! The Area Controller's configuration: its settings and its registry of devices and
//! computations (the paper's two XML files).

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use crate::limits::{Limits, MAX_HOSTED, MAX_OBJECTS};
use crate::psk::Psk;
use crate::time::to_ms;
use crate::wire::bottle::{name_ok, StateMode};

/// An inclusive range of durations: the intervals the AC accepts. The AC negotiates in
/// whole milliseconds, so it uses both ends rounded down to whole milliseconds (and at
/// most `u32::MAX` milliseconds, about 49.7 days).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Smallest value accepted.
    pub min: Duration,
    /// Largest value accepted.
    pub max: Duration,
}

impl Bounds {
    /// The range from `min` to `max`.
    pub const fn new(min: Duration, max: Duration) -> Bounds {
        Bounds { min, max }
    }

    /// Clamps `v` into the range (to `min` if the range is empty).
    pub fn clamp(self, v: Duration) -> Duration {
        v.clamp(self.min, self.max.max(self.min))
    }

    /// Whether `v` lies in the range, ends included.
    pub fn contains(self, v: Duration) -> bool {
        self.min <= v && v <= self.max
    }

    /// The range in the wire's milliseconds.
    pub(crate) fn to_ms(self) -> MsBounds {
        MsBounds {
            min: to_ms(self.min),
            max: to_ms(self.max),
        }
    }
}

/// [`Bounds`] in whole milliseconds, as the AC negotiates with them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MsBounds {
    /// Smallest value accepted.
    pub(crate) min: u32,
    /// Largest value accepted.
    pub(crate) max: u32,
}

impl MsBounds {
    /// Clamps `v` into the range.
    pub(crate) fn clamp(self, v: u32) -> u32 {
        v.clamp(self.min, self.max.max(self.min))
    }
}

/// A device the AC is responsible for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceSpec {
    /// Its name, as it says in GOOD_MORNING.
    pub name: String,
    /// The computations it runs natively (their names).
    pub runs: Vec<String>,
    /// What it offers to computations that require something (`"wasm"`, `"fpu"`, …).
    pub capabilities: Vec<String>,
    /// Most computations it may run at once, its own included.
    pub max_hosted: u16,
    /// The key it shares with the AC: when set, it must join and talk in pre-shared-key
    /// mode ([`crate::psk`]), and nothing it sends otherwise is accepted.
    pub psk: Option<Psk>,
}

impl DeviceSpec {
    /// A device running `runs`, with no capabilities and room for [`MAX_HOSTED`]
    /// computations.
    pub fn new(name: &str, runs: &[&str]) -> DeviceSpec {
        DeviceSpec {
            name: name.into(),
            runs: runs.iter().map(|&r| r.into()).collect(),
            capabilities: Vec::new(),
            max_hosted: MAX_HOSTED as u16,
            psk: None,
        }
    }
}

/// One object of a computation: code, its SUI, or data it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectSpec {
    /// The object's id in the repository.
    pub id: String,
    /// Whether the target starts it after installing (the paper's invoke flag).
    pub invoke: bool,
}

/// An essential computation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComputationSpec {
    /// Its name.
    pub name: String,
    /// Its objects in the repository, in the order they are shipped: the code, the State
    /// and SUI objects.
    pub objects: Vec<ObjectSpec>,
    /// Devices allowed to host it, in order of preference. Empty: any device with the
    /// required capabilities.
    pub hosts: Vec<String>,
    /// Capabilities a host must offer.
    pub requires: Vec<String>,
}

impl ComputationSpec {
    /// A computation made of one invoked object named `code`, hosted anywhere.
    pub fn new(name: &str, code: &str) -> ComputationSpec {
        ComputationSpec {
            name: name.into(),
            objects: alloc::vec![ObjectSpec {
                id: code.into(),
                invoke: true
            }],
            hosts: Vec::new(),
            requires: Vec::new(),
        }
    }
}

/// Limits on the answers to refused bottles (REJECT, and GOOD_BYE or GOOD_BYE_ACK for a
/// session that is over or unknown), so that the AC amplifies no flood: token buckets per
/// source (a fixed table of them, indexed by a keyed hash of the link) and over all sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefusalLimits {
    /// Answers per second to one source, on average.
    pub per_source_per_s: u32,
    /// Answers one source may get at once beyond that rate.
    pub per_source_burst: u32,
    /// Answers per second to all sources together, on average.
    pub total_per_s: u32,
    /// Answers all sources may get at once beyond that rate.
    pub total_burst: u32,
    /// Buckets in the per-source table (1 to 65,536): sources whose hashes collide share one.
    pub sources: usize,
}

impl RefusalLimits {
    /// 10 answers a second per source with bursts of 5, 200 a second in all with bursts of
    /// 50, 1,024 buckets.
    pub const DEFAULT: RefusalLimits = RefusalLimits {
        per_source_per_s: 10,
        per_source_burst: 5,
        total_per_s: 200,
        total_burst: 50,
        sources: 1024,
    };
}

/// Everything the AC is configured with. Fields are public; start from the preset that
/// fits the network — [`ControllerConfig::lan`] (also [`ControllerConfig::new`]),
/// [`ControllerConfig::wan`] or [`ControllerConfig::microcontroller`] — and change what
/// differs. [`ControllerConfig::validate`] checks a configuration. Each preset accepts the
/// intervals the [`crate::DeviceConfig`] preset of the same name proposes, unchanged.
///
/// ```
/// use std::time::Duration;
/// use pcxses_core::controller::{ComputationSpec, DeviceSpec};
/// use pcxses_core::ControllerConfig;
///
/// let mut config = ControllerConfig::wan(
///     pcxses_core::os_seed().unwrap_or(1),
///     vec![DeviceSpec::new("pump", &["flow"])],
///     vec![ComputationSpec::new("flow", "flow.wasm")],
/// );
/// config.quarantine_retry = Duration::from_secs(60);
/// config.validate()?;
/// # Ok::<(), pcxses_core::controller::ConfigError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerConfig {
    /// Seed of the internal PRNG (session ids). Different per AC instance.
    pub seed: u64,
    /// HELLO intervals the AC accepts; proposals are clamped into it. Both ends at least
    /// 1 ms.
    pub hello: Bounds,
    /// Dead intervals the AC accepts; proposals are clamped into it and then raised to at
    /// least three times the HELLO interval. Both ends at least 1 ms.
    pub dead: Bounds,
    /// Forces every device into one mode; `None` accepts each device's proposal.
    pub mode: Option<StateMode>,
    /// Whether devices fence themselves (PROTOCOL.md §7.4).
    pub fencing: bool,
    /// Decoding limits; `limits.max_bottle` is also the largest bottle the AC sends.
    pub limits: Limits,
    /// Chunks in flight per transfer.
    pub window: u16,
    /// First retransmission timeout (not zero); it doubles per retry up to `rto_max`.
    pub rto: Duration,
    /// Largest retransmission timeout.
    pub rto_max: Duration,
    /// A MORPH attempt with no progress for this long is abandoned.
    pub morph_timeout: Duration,
    /// Most concurrent MORPHs towards one target.
    pub max_morphs_per_target: u16,
    /// MORPHs started per second at most, over all targets, when many devices fail at
    /// once; `0` for no limit. Computations beyond wait their turn, oldest first.
    pub morphs_per_s: u32,
    /// How many MORPHs may start at once before `morphs_per_s` paces them.
    pub morph_burst: u32,
    /// Consecutive failed targets after which a computation is quarantined. Only failures
    /// of the computation count ([`super::MigrationFailure::counts`]).
    pub quarantine_after: u32,
    /// How long a quarantined computation waits before it is tried again; the wait doubles
    /// with each quarantine in a row, up to 16 times this. Zero: only
    /// [`super::Controller::release`] lifts a quarantine.
    pub quarantine_retry: Duration,
    /// Most outputs queued between drains; transmits beyond are dropped and counted.
    pub outbox_limit: usize,
    /// After [`super::Controller::restore`], how long every session has to be heard from
    /// before its dead timer runs again (at least its dead interval; counted in whole
    /// milliseconds, rounded down). Covers devices that fenced during the AC's downtime
    /// and back off their GOOD_MORNING retries.
    pub restart_grace: Duration,
    /// The AC itself stalled when it handles an input this much later than the deadline it
    /// last asked for (a paused process, an overloaded host): every dead timer then moves
    /// by the stall, so no device dies for bottles the AC had not read yet.
    pub stall_grace: Duration,
    /// Refuses every GOOD_MORNING that is neither sealed with the device's pre-shared key
    /// nor carried by a transport that authenticated the device (a QUIC certificate): no
    /// device joins unauthenticated.
    pub require_auth: bool,
    /// Lets a computation whose home or source device is authenticated move to a less
    /// authenticated device (an unkeyed one, in the clear). Off: such a computation waits
    /// for an authenticated target, orphaned if there is none.
    pub allow_auth_downgrade: bool,
    /// How often the AC answers bottles it refuses.
    pub refusals: RefusalLimits,
    /// The devices.
    pub devices: Vec<DeviceSpec>,
    /// The computations.
    pub computations: Vec<ComputationSpec>,
}

impl ControllerConfig {
    /// The defaults, for a LAN: the same as [`ControllerConfig::lan`].
    pub fn new(seed: u64, devices: Vec<DeviceSpec>, computations: Vec<ComputationSpec>) -> Self {
        ControllerConfig::lan(seed, devices, computations)
    }

    /// For a wired or otherwise reliable local network, with devices configured by
    /// [`crate::DeviceConfig::lan`] (HELLO every second, dead after 3 s): HELLO intervals
    /// of 10 ms to 60 s and dead intervals of 30 ms to 10 min accepted, fencing on,
    /// 1200-byte bottles, a window of 16 chunks, retransmissions from 200 ms up to 3 s, a
    /// MORPH abandoned after 5 s without progress, 2 MORPHs per target, no pacing of MORPH
    /// starts (bursts of 16 once `morphs_per_s` is set), quarantine after 3 failures and a
    /// retry after 30 s, 65,536 queued outputs, 10 s of grace after a restart, a stall
    /// when 100 ms late, unauthenticated devices accepted, no authentication downgrade,
    /// and [`RefusalLimits::DEFAULT`].
    pub fn lan(seed: u64, devices: Vec<DeviceSpec>, computations: Vec<ComputationSpec>) -> Self {
        ControllerConfig {
            seed,
            hello: Bounds::new(Duration::from_millis(10), Duration::from_secs(60)),
            dead: Bounds::new(Duration::from_millis(30), Duration::from_secs(600)),
            mode: None,
            fencing: true,
            limits: Limits::DEFAULT,
            window: 16,
            rto: Duration::from_millis(200),
            rto_max: Duration::from_secs(3),
            morph_timeout: Duration::from_secs(5),
            max_morphs_per_target: 2,
            morphs_per_s: 0,
            morph_burst: 16,
            quarantine_after: 3,
            quarantine_retry: Duration::from_secs(30),
            outbox_limit: 65_536,
            restart_grace: Duration::from_secs(10),
            stall_grace: Duration::from_millis(100),
            require_auth: false,
            allow_auth_downgrade: false,
            refusals: RefusalLimits::DEFAULT,
            devices,
            computations,
        }
    }

    /// For devices on a lossy wide-area link, configured by [`crate::DeviceConfig::wan`]
    /// (HELLO every second, dead after 20 s; see there why): HELLO intervals of 250 ms to
    /// 60 s and dead intervals of 5 s to 10 min accepted, so that no device is declared
    /// dead after a handful of lost HELLOs, retransmissions from 500 ms up to 8 s, a MORPH
    /// abandoned after 20 s without progress, and 30 s of grace after a restart; the rest
    /// as [`ControllerConfig::lan`].
    pub fn wan(seed: u64, devices: Vec<DeviceSpec>, computations: Vec<ComputationSpec>) -> Self {
        ControllerConfig {
            hello: Bounds::new(Duration::from_millis(250), Duration::from_secs(60)),
            dead: Bounds::new(Duration::from_secs(5), Duration::from_secs(600)),
            rto: Duration::from_millis(500),
            rto_max: Duration::from_secs(8),
            morph_timeout: Duration::from_secs(20),
            restart_grace: Duration::from_secs(30),
            ..ControllerConfig::lan(seed, devices, computations)
        }
    }

    /// For microcontroller devices configured by [`crate::DeviceConfig::microcontroller`]
    /// (HELLO every 3 s, dead after 20 s, 2 hosted computations, 64 KiB per MORPH): HELLO
    /// intervals of 1 s to 5 min and dead intervals of 3 s to 30 min accepted, a window of
    /// 4 chunks and one MORPH at a time towards a device (what a small device buffers),
    /// retransmissions from 500 ms up to 8 s, a MORPH abandoned after 30 s without
    /// progress, and 30 s of grace after a restart; the rest as [`ControllerConfig::lan`].
    ///
    /// Every device's [`DeviceSpec::max_hosted`] is lowered to 2, what the device preset
    /// hosts.
    pub fn microcontroller(
        seed: u64,
        mut devices: Vec<DeviceSpec>,
        computations: Vec<ComputationSpec>,
    ) -> Self {
        for d in &mut devices {
            d.max_hosted = d.max_hosted.min(2);
        }
        ControllerConfig {
            hello: Bounds::new(Duration::from_secs(1), Duration::from_secs(300)),
            dead: Bounds::new(Duration::from_secs(3), Duration::from_secs(1_800)),
            window: 4,
            rto: Duration::from_millis(500),
            rto_max: Duration::from_secs(8),
            morph_timeout: Duration::from_secs(30),
            max_morphs_per_target: 1,
            restart_grace: Duration::from_secs(30),
            ..ControllerConfig::lan(seed, devices, computations)
        }
    }

    /// Checks names, references and numbers; the error names the offending entry.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut devices = BTreeSet::new();
        let mut comps = BTreeSet::new();
        for c in &self.computations {
            if !name_ok(&c.name) {
                return Err(ConfigError::BadName(c.name.clone()));
            }
            if !comps.insert(c.name.as_str()) {
                return Err(ConfigError::Duplicate(c.name.clone()));
            }
            if c.objects.is_empty() || c.objects.len() > MAX_OBJECTS {
                return Err(ConfigError::Objects(c.name.clone()));
            }
            if let Some(o) = c.objects.iter().find(|o| !name_ok(&o.id)) {
                return Err(ConfigError::BadName(o.id.clone()));
            }
        }
        let mut homed = BTreeSet::new();
        for d in &self.devices {
            if !name_ok(&d.name) {
                return Err(ConfigError::BadName(d.name.clone()));
            }
            if !devices.insert(d.name.as_str()) {
                return Err(ConfigError::Duplicate(d.name.clone()));
            }
            if d.runs.len() > usize::from(d.max_hosted).min(MAX_HOSTED) {
                return Err(ConfigError::TooManyRuns(d.name.clone()));
            }
            for r in &d.runs {
                if !comps.contains(r.as_str()) {
                    return Err(ConfigError::UnknownComputation(r.clone()));
                }
                if !homed.insert(r.as_str()) {
                    return Err(ConfigError::TwoHomes(r.clone()));
                }
            }
        }
        for c in &self.computations {
            if let Some(h) = c.hosts.iter().find(|h| !devices.contains(h.as_str())) {
                return Err(ConfigError::UnknownDevice(h.clone()));
            }
        }
        if self.devices.len() > super::session_ids::MAX_DEVICES {
            return Err(ConfigError::Setting("devices: at most 1,048,576"));
        }
        let bounds_ok = |b: Bounds| to_ms(b.min) > 0 && b.min <= b.max;
        if !bounds_ok(self.hello) || !bounds_ok(self.dead) {
            return Err(ConfigError::Setting("hello/dead bounds"));
        }
        if self.window == 0 || self.rto.is_zero() || self.rto_max < self.rto {
            return Err(ConfigError::Setting("window/rto/rto_max"));
        }
        if self.limits.max_bottle < 64 || self.limits.max_bottle > crate::MAX_BOTTLE_LEN {
            return Err(ConfigError::Setting("limits.max_bottle"));
        }
        let r = &self.refusals;
        if r.per_source_per_s == 0 || r.total_per_s == 0 || !(1..=65_536).contains(&r.sources) {
            return Err(ConfigError::Setting("refusals"));
        }
        if self.max_morphs_per_target == 0 || self.quarantine_after == 0 {
            return Err(ConfigError::Setting(
                "max_morphs_per_target/quarantine_after",
            ));
        }
        Ok(())
    }
}

/// A configuration the controller cannot run with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A name is empty or longer than 32 bytes.
    #[error("name {0:?} is empty or longer than 32 bytes")]
    BadName(String),
    /// Two devices or two computations share a name.
    #[error("{0:?} is defined twice")]
    Duplicate(String),
    /// A computation has no objects, or more than the manifest can list.
    #[error("computation {0:?} must have 1 to 8 objects")]
    Objects(String),
    /// A device runs more computations than it may host.
    #[error("device {0:?} runs more computations than it may host")]
    TooManyRuns(String),
    /// A device runs a computation that is not defined.
    #[error("unknown computation {0:?}")]
    UnknownComputation(String),
    /// A host list names a device that is not defined.
    #[error("unknown device {0:?}")]
    UnknownDevice(String),
    /// Two devices claim to run the same computation natively.
    #[error("computation {0:?} is run natively by two devices")]
    TwoHomes(String),
    /// A numeric setting is out of range; names it.
    #[error("setting {0} is out of range")]
    Setting(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ControllerConfig {
        ControllerConfig::lan(1, Vec::new(), Vec::new())
    }

    fn refused(tweak: impl FnOnce(&mut ControllerConfig)) -> Result<(), ConfigError> {
        let mut c = config();
        tweak(&mut c);
        c.validate()
    }

    #[test]
    fn intervals_are_checked_in_whole_milliseconds() {
        let ms = Duration::from_millis;
        let bounds = Err(ConfigError::Setting("hello/dead bounds"));
        assert_eq!(refused(|c| c.hello.min = Duration::ZERO), bounds);
        // Rounded down, 0.9 ms is no HELLO interval at all.
        assert_eq!(
            refused(|c| c.hello.min = Duration::from_micros(900)),
            bounds
        );
        assert_eq!(refused(|c| c.dead = Bounds::new(ms(5), ms(4))), bounds);
        assert_eq!(refused(|c| c.hello.min = ms(1)), Ok(()));
        assert_eq!(refused(|c| c.dead = Bounds::new(ms(4), ms(4))), Ok(()));
        let rto = Err(ConfigError::Setting("window/rto/rto_max"));
        assert_eq!(refused(|c| c.rto = Duration::ZERO), rto);
        assert_eq!(
            refused(|c| c.rto_max = c.rto - Duration::from_micros(1)),
            rto
        );
        assert_eq!(refused(|c| c.window = 0), rto);
    }

    #[test]
    fn bounds_go_on_the_wire_rounded_down_and_saturated() {
        let b = Bounds::new(Duration::from_micros(1_999), Duration::MAX).to_ms();
        assert_eq!((b.min, b.max), (1, u32::MAX));
        let b = Bounds::new(Duration::from_millis(50), Duration::from_secs(2));
        assert_eq!(b.clamp(Duration::from_millis(1)), Duration::from_millis(50));
        assert_eq!(b.clamp(Duration::from_secs(9)), Duration::from_secs(2));
        assert!(b.contains(Duration::from_secs(2)) && !b.contains(Duration::from_millis(49)));
        assert_eq!(b.to_ms().clamp(1), 50);
    }
}
