//! The Area Controller's configuration: its settings and its registry of devices and
//! computations (the paper's two XML files).

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;

use crate::limits::{Limits, MAX_HOSTED, MAX_OBJECTS};
use crate::psk::Psk;
use crate::wire::bottle::{name_ok, StateMode};

/// An inclusive range of milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Smallest value accepted.
    pub min: u32,
    /// Largest value accepted.
    pub max: u32,
}

impl Bounds {
    /// Clamps `v` into the range.
    pub fn clamp(self, v: u32) -> u32 {
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

/// Everything the AC is configured with. Fields are public; [`ControllerConfig::new`]
/// gives the defaults and [`ControllerConfig::validate`] checks a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerConfig {
    /// Seed of the internal PRNG (session ids). Different per AC instance.
    pub seed: u64,
    /// HELLO intervals the AC accepts; proposals are clamped into it.
    pub hello_ms: Bounds,
    /// Dead intervals the AC accepts; also never below twice the HELLO interval.
    pub dead_ms: Bounds,
    /// Forces every device into one mode; `None` accepts each device's proposal.
    pub mode: Option<StateMode>,
    /// Whether devices fence themselves (PROTOCOL.md §7.4).
    pub fencing: bool,
    /// Decoding limits; `limits.max_bottle` is also the largest bottle the AC sends.
    pub limits: Limits,
    /// Chunks in flight per transfer.
    pub window: u16,
    /// First retransmission timeout; it doubles per retry up to `rto_max_ms`.
    pub rto_ms: u32,
    /// Largest retransmission timeout.
    pub rto_max_ms: u32,
    /// A MORPH attempt with no progress for this long is abandoned.
    pub morph_timeout_ms: u32,
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
    /// with each quarantine in a row, up to 16 times this. `0`: only
    /// [`super::Controller::release`] lifts a quarantine.
    pub quarantine_retry_ms: u32,
    /// Most outputs queued between drains; transmits beyond are dropped and counted.
    pub outbox_limit: usize,
    /// After [`super::Controller::restore`], how long every session has to be heard from
    /// before its dead timer runs again (at least its dead interval). Covers devices that
    /// fenced during the AC's downtime and back off their GOOD_MORNING retries.
    pub restart_grace_ms: u32,
    /// The AC itself stalled when it handles an input this much later than the deadline it
    /// last asked for (a paused process, an overloaded host): every dead timer then moves
    /// by the stall, so no device dies for bottles the AC had not read yet.
    pub stall_grace_ms: u32,
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
    /// Defaults: HELLO 10 ms–60 s, dead 30 ms–10 min, fencing on, 1200-byte bottles, a
    /// window of 16 chunks, 200 ms RTO, MORPH timeout 5 s, 2 MORPHs per target,
    /// quarantine after 3 failures and retry after 30 s, 10 s of grace after a restart, a stall is 100 ms late,
    /// unauthenticated devices accepted, no authentication downgrade, and
    /// [`RefusalLimits::DEFAULT`].
    pub fn new(seed: u64, devices: Vec<DeviceSpec>, computations: Vec<ComputationSpec>) -> Self {
        ControllerConfig {
            seed,
            hello_ms: Bounds {
                min: 10,
                max: 60_000,
            },
            dead_ms: Bounds {
                min: 30,
                max: 600_000,
            },
            mode: None,
            fencing: true,
            limits: Limits::DEFAULT,
            window: 16,
            rto_ms: 200,
            rto_max_ms: 3_000,
            morph_timeout_ms: 5_000,
            max_morphs_per_target: 2,
            morphs_per_s: 0,
            morph_burst: 16,
            quarantine_after: 3,
            quarantine_retry_ms: 30_000,
            outbox_limit: 65_536,
            restart_grace_ms: 10_000,
            stall_grace_ms: 100,
            require_auth: false,
            allow_auth_downgrade: false,
            refusals: RefusalLimits::DEFAULT,
            devices,
            computations,
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
        let bounds_ok = |b: Bounds| b.min > 0 && b.min <= b.max;
        if !bounds_ok(self.hello_ms) || !bounds_ok(self.dead_ms) {
            return Err(ConfigError::Setting("hello_ms/dead_ms bounds"));
        }
        if self.window == 0 || self.rto_ms == 0 || self.rto_max_ms < self.rto_ms {
            return Err(ConfigError::Setting("window/rto_ms/rto_max_ms"));
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
