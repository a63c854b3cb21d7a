//! The Area Controller's configuration: its settings and its registry of devices and
//! computations (the paper's two XML files).

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use super::names::Names;
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
    /// First and least retransmission timeout (not zero); it doubles per retry up to
    /// `rto_max`, and follows the measured round trip when that is longer
    /// (`docs/PROTOCOL.md` §8).
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
    /// Dead timers are checked on a grid of this period since the epoch (zero: each at its
    /// own instant): a session is declared dead no earlier than its timer expires and at
    /// most this much later, and a HELLO read before that check still keeps it. Sessions
    /// whose timers expire microseconds apart (a fleet of HELLOs) then wake the AC once per
    /// period, not once each. At most the shortest dead interval accepted (`dead.min`).
    pub dead_grid: Duration,
    /// The AC itself stalled when it handles an input this much later than the deadline it
    /// last asked for (a paused process, an overloaded host): every dead timer then moves
    /// by the time since the AC last handled anything, so no device dies for bottles the
    /// AC had not read yet (by the lateness only when the last input was late as well).
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
    /// retry after 30 s, 65,536 queued outputs, 10 s of grace after a restart, dead timers
    /// checked every 10 ms, a stall when 100 ms late, unauthenticated devices accepted, no
    /// authentication downgrade, and [`RefusalLimits::DEFAULT`].
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
            dead_grid: Duration::from_millis(10),
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

    /// Checks names, references and numbers; the error names the offending entry. The
    /// first of [`ControllerConfig::errors`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.errors().into_iter().next().map_or(Ok(()), Err)
    }

    /// Every problem [`ControllerConfig::validate`] would refuse, in the order it checks:
    /// the computations, the devices, the host lists, then the numeric settings. Empty
    /// when the configuration is valid.
    pub fn errors(&self) -> Vec<ConfigError> {
        let (devices, comps) = self.names();
        self.errors_named(&devices, &comps)
    }

    /// The names of the devices and of the computations, as the controller finds them.
    pub(super) fn names(&self) -> (Names, Names) {
        let devices = Names::new(self.devices.iter().map(|d| d.name.as_str()));
        let comps = Names::new(self.computations.iter().map(|c| c.name.as_str()));
        (devices, comps)
    }

    /// [`ControllerConfig::errors`], given the [`ControllerConfig::names`].
    pub(super) fn errors_named(&self, devices: &Names, comps: &Names) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        self.registry_errors(devices, comps, &mut errors);
        self.setting_errors(&mut errors);
        errors
    }

    /// Names and references of the devices and computations: the names sorted once each,
    /// not a set built name by name.
    fn registry_errors(&self, devices: &Names, comps: &Names, errors: &mut Vec<ConfigError>) {
        for (i, c) in (0..).zip(&self.computations) {
            if !name_ok(&c.name) {
                errors.push(ConfigError::BadName(c.name.clone()));
            }
            if comps.repeats(i) {
                errors.push(ConfigError::Duplicate(c.name.clone()));
            }
            if c.objects.is_empty() || c.objects.len() > MAX_OBJECTS {
                errors.push(ConfigError::Objects(c.name.clone()));
            }
            for o in c.objects.iter().filter(|o| !name_ok(&o.id)) {
                errors.push(ConfigError::BadName(o.id.clone()));
            }
        }
        let mut homed = alloc::vec![false; self.computations.len()];
        let mut runs = comps.finder();
        for (i, d) in (0..).zip(&self.devices) {
            if !name_ok(&d.name) {
                errors.push(ConfigError::BadName(d.name.clone()));
            }
            if devices.repeats(i) {
                errors.push(ConfigError::Duplicate(d.name.clone()));
            }
            if d.runs.len() > usize::from(d.max_hosted).min(MAX_HOSTED) {
                errors.push(ConfigError::TooManyRuns(d.name.clone()));
            }
            for r in &d.runs {
                match runs.find(r) {
                    None => errors.push(ConfigError::UnknownComputation(r.clone())),
                    Some(c) if core::mem::replace(&mut homed[c as usize], true) => {
                        errors.push(ConfigError::TwoHomes(r.clone()));
                    }
                    Some(_) => {}
                }
            }
        }
        let mut hosts = devices.finder();
        for c in &self.computations {
            for h in c.hosts.iter().filter(|h| hosts.find(h).is_none()) {
                errors.push(ConfigError::UnknownDevice(h.clone()));
            }
        }
    }

    /// The numeric settings, each named as its field is.
    fn setting_errors(&self, errors: &mut Vec<ConfigError>) {
        let mut check = |ok: bool, setting: &'static str| {
            if !ok {
                errors.push(ConfigError::Setting(setting));
            }
        };
        check(
            self.devices.len() <= super::session_ids::MAX_DEVICES,
            "devices",
        );
        let bounds_ok = |b: Bounds| to_ms(b.min) > 0 && b.min <= b.max;
        check(bounds_ok(self.hello), "hello");
        check(bounds_ok(self.dead), "dead");
        check(self.window > 0, "window");
        check(!self.rto.is_zero(), "rto");
        check(self.rto_max >= self.rto, "rto_max");
        check(to_ms(self.morph_timeout) > 0, "morph_timeout");
        check(self.dead_grid <= self.dead.min, "dead_grid");
        check(!self.stall_grace.is_zero(), "stall_grace");
        let max_bottle = self.limits.max_bottle;
        check(
            (64..=crate::MAX_BOTTLE_LEN).contains(&max_bottle),
            "limits.max_bottle",
        );
        check(
            self.limits.max_state <= self.limits.max_transfer,
            "limits.max_state",
        );
        let r = &self.refusals;
        check(
            r.per_source_per_s > 0 && r.total_per_s > 0 && (1..=65_536).contains(&r.sources),
            "refusals",
        );
        check(self.max_morphs_per_target > 0, "max_morphs_per_target");
        check(self.quarantine_after > 0, "quarantine_after");
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
    /// A numeric setting is out of range; names it as its field is (`hello`, `dead`,
    /// `window`, `rto`, `rto_max`, `morph_timeout`, `dead_grid`, `stall_grace`,
    /// `limits.max_bottle`,
    /// `limits.max_state`, `refusals`, `max_morphs_per_target`, `quarantine_after` or
    /// `devices`). Durations must be at least a millisecond, `limits.max_state` at most
    /// `limits.max_transfer` (what one MORPH carries).
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
        let hello = Err(ConfigError::Setting("hello"));
        assert_eq!(refused(|c| c.hello.min = Duration::ZERO), hello);
        // Rounded down, 0.9 ms is no HELLO interval at all.
        assert_eq!(refused(|c| c.hello.min = Duration::from_micros(900)), hello);
        let dead = Err(ConfigError::Setting("dead"));
        assert_eq!(refused(|c| c.dead = Bounds::new(ms(5), ms(4))), dead);
        assert_eq!(refused(|c| c.hello.min = ms(1)), Ok(()));
        let short = |c: &mut ControllerConfig| c.dead = Bounds::new(ms(4), ms(4));
        assert_eq!(refused(short), Err(ConfigError::Setting("dead_grid")));
        let grid = |c: &mut ControllerConfig| c.dead_grid = ms(4);
        assert_eq!(refused(|c| (short(c), grid(c)).1), Ok(()));
        let rto = Err(ConfigError::Setting("rto"));
        assert_eq!(refused(|c| c.rto = Duration::ZERO), rto);
        assert_eq!(
            refused(|c| c.rto_max = c.rto - Duration::from_micros(1)),
            Err(ConfigError::Setting("rto_max"))
        );
        assert_eq!(
            refused(|c| c.window = 0),
            Err(ConfigError::Setting("window"))
        );
        assert_eq!(
            refused(|c| c.morph_timeout = Duration::from_micros(999)),
            Err(ConfigError::Setting("morph_timeout"))
        );
        assert_eq!(
            refused(|c| c.stall_grace = Duration::ZERO),
            Err(ConfigError::Setting("stall_grace"))
        );
    }

    #[test]
    fn the_largest_state_fits_a_morph() {
        assert_eq!(
            refused(|c| c.limits.max_state = c.limits.max_transfer + 1),
            Err(ConfigError::Setting("limits.max_state"))
        );
        assert_eq!(
            refused(|c| c.limits.max_state = c.limits.max_transfer),
            Ok(())
        );
    }

    #[test]
    fn every_error_is_listed_not_only_the_first() {
        let mut c = ControllerConfig::lan(
            1,
            alloc::vec![
                DeviceSpec::new("dev0", &["nowhere"]),
                DeviceSpec::new("dev0", &[]),
            ],
            alloc::vec![ComputationSpec {
                hosts: alloc::vec!["ghost".into()],
                ..ComputationSpec::new("comp0", "")
            }],
        );
        c.morph_timeout = Duration::ZERO;
        c.quarantine_after = 0;
        assert_eq!(
            c.errors(),
            [
                ConfigError::BadName("".into()),
                ConfigError::UnknownComputation("nowhere".into()),
                ConfigError::Duplicate("dev0".into()),
                ConfigError::UnknownDevice("ghost".into()),
                ConfigError::Setting("morph_timeout"),
                ConfigError::Setting("quarantine_after"),
            ]
        );
        assert_eq!(c.validate(), Err(ConfigError::BadName("".into())));
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
