//! The AC's configuration file: its settings and its registry, in TOML. It replaces the
//! paper's two XML files.
//!
//! ```toml
//! [ac]
//! listen = "127.0.0.1:4700"
//! repository = "repo"          # relative to this file
//! hello_ms = { min = 50, max = 10000 }
//!
//! [[device]]
//! name = "pacman"
//! runs = ["counter-a"]
//!
//! [[computation]]
//! name = "counter-a"
//! objects = [{ id = "counter.bin", invoke = true }]
//! ```
//!
//! A fleet of alike devices is written once, as a group of `count` members numbered from
//! `first` (0 by default) and named by a pattern whose one placeholder, `{}` or `{:0N}`
//! (zero-padded to N digits, N from 1 to 9), stands for the member's number. A device
//! group has the settings of a `[[device]]`; the placeholder may stand in its `runs` too
//! (each member runs a computation of its own; a run without one is the same computation
//! for every member) and in its `psk_file` (each member has a key file of its own). A
//! computation group has the settings of a `[[computation]]`, the placeholder standing in
//! its `hosts` too. Everything else is shared by the members. A million devices, each
//! running a counter of its own:
//!
//! ```toml
//! [[device_group]]
//! name = "load-{:06}"          # load-000000 … load-999999
//! count = 1000000
//! runs = ["c-{:06}"]           # load-000042 runs c-000042
//!
//! [[computation_group]]
//! name = "c-{:06}"
//! count = 1000000
//! objects = [{ id = "counter.bin", invoke = true }]
//! ```
//!
//! The controller numbers the entries first, in the order of the file, then the members
//! of each group, group after group. Names are unique across entries and groups. A
//! group has 1 to 1,048,576 members; the devices of all entries and groups together are
//! at most 1,048,576, the computations at most 8 times as many (what the devices can
//! host).
//!
//! The file is read in parts ([`split`]): each entry of the registry on its own, straight
//! into the controller's specs, and the other sections as one small document; no
//! document as large as the registry is built.
//!
//! [`AcConfig::load`] reports every problem it finds, each named by its TOML key path
//! (`ac.hello_ms.min`, `device[1].runs`, `computation[0].objects[2].id`,
//! `device_group[0].count`): a syntax error, an unknown key, a value that does not fit its
//! type or its range, a malformed pattern, a name or reference the controller refuses, a
//! pre-shared key file that cannot be read. Problems of a group's members that share a
//! key are shown three at a time, with how many more there are.

pub mod pattern;
pub mod registry;
pub mod split;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::HashMap;

use pcxses_core::controller::{Bounds, ConfigError};
use pcxses_core::wire::StateMode;
use pcxses_core::ControllerConfig;
use pcxses_transport_tcp::ConnectionLimits;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use pcxses_program::transport::TransportLimits;
use registry::{Built, ErrorKeys, Origins, Registry, SECTIONS};
use split::{EntryError, Lines, Parts, Rest};

/// `[status]`: where the AC serves `/status` and `/metrics` over HTTP (see
/// [`crate::http`]). Without this section (or `--status-listen`), the AC serves neither.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusSection {
    /// Address to serve on; keep it on loopback unless the network is trusted: the status
    /// names every device and its address.
    pub listen: SocketAddr,
}

/// `[etcd]`: the area's ACs stand by for each other on etcd (see `pcxses_etcd`): each one
/// started with this file campaigns for the area's leader key, the one that wins restores
/// the journal the area keeps in etcd and serves, and every commit of its journal is fenced
/// by its lease. Instead of `[ac] journal`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdSection {
    /// The etcd cluster's client URLs (`http://host:port`).
    pub endpoints: Vec<String>,
    /// The prefix of the area's keys (`/pcxses/area-1`).
    pub prefix: String,
    /// The leader's lease, seconds (default 2): a dead leader's area is taken over this
    /// long after it stopped renewing, and a leader cut off from etcd stops acknowledging
    /// before it could have expired.
    pub lease_ttl_s: Option<u32>,
    /// Each etcd request's timeout, ms (default 2,000, at most the lease): long enough to
    /// ride out the election of a new raft leader when a member dies (etcd's default
    /// election timeout is 1 s); the AC's loop waits for its commits.
    pub timeout_ms: Option<u32>,
}

impl EtcdSection {
    /// The leader's lease.
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.lease_ttl_s.unwrap_or(2).into())
    }

    /// Each request's timeout, ms.
    fn timeout_ms(&self) -> u64 {
        self.timeout_ms.unwrap_or(2_000).into()
    }

    /// Each request's timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms())
    }
}

/// `[ac]`: where to listen and how to run the protocol; every field but `listen` and
/// `repository` has the library's default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcSection {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory of the object repository, relative to the file.
    pub repository: PathBuf,
    /// Seed of the AC's PRNG; defaults to one drawn from the clock.
    pub seed: Option<u64>,
    /// Accepted HELLO intervals.
    pub hello_ms: Option<RangeMs>,
    /// Accepted dead intervals.
    pub dead_ms: Option<RangeMs>,
    /// Forced state mode: `"joined"` or `"split"`.
    pub mode: Option<ModeName>,
    /// Whether devices fence themselves.
    pub fencing: Option<bool>,
    /// Largest bottle, bytes.
    pub max_bottle: Option<usize>,
    /// Largest LKGS, bytes.
    pub max_state: Option<u32>,
    /// MORPH attempt timeout without progress.
    pub morph_timeout_ms: Option<u32>,
    /// Concurrent MORPHs per target.
    pub max_morphs_per_target: Option<u16>,
    /// Consecutive failures of a computation before quarantine.
    pub quarantine_after: Option<u32>,
    /// First wait before a quarantined computation is tried again (0: only a release).
    pub quarantine_retry_ms: Option<u32>,
    /// MORPHs started per second at most (0: no limit).
    pub morphs_per_s: Option<u32>,
    /// MORPHs that may start at once before `morphs_per_s` paces them.
    pub morph_burst: Option<u32>,
    /// Period of the grid dead timers are checked on (0: each at its own instant).
    pub dead_grid_ms: Option<u32>,
    /// How late past its deadline the AC counts as stalled (its dead timers then move).
    pub stall_grace_ms: Option<u32>,
    /// After a restart from the journal, how long every device has to be heard from
    /// before it can be declared dead (at least its dead interval).
    pub restart_grace_ms: Option<u32>,
    /// File holding the code-signing secret key (hex), relative to this file; when set,
    /// every MORPH manifest is signed (see `pcxses-ac keygen`).
    pub code_signing_key: Option<PathBuf>,
    /// The journal file, relative to this file: every acknowledged state, session and
    /// placement survives the AC (see [`crate::journal`]).
    pub journal: Option<PathBuf>,
    /// `"sync"` (the default): a state is acknowledged only once the journal is synced to
    /// disk; `"os"`: once it is written, leaving the sync to the operating system (faster,
    /// and an AC crash still loses nothing, but a power cut may).
    pub durability: Option<Durability>,
    /// TCP and QUIC: connections open at once, at most; a new one beyond evicts the oldest
    /// that has had no bottle accepted (default 4096).
    pub max_connections: Option<usize>,
    /// TCP and QUIC: time a connection has to get a bottle accepted before it is closed
    /// (default: twice `hello_ms.max`).
    pub first_bottle_ms: Option<u32>,
    /// TCP and QUIC: time a connection may go without a bottle before it is closed
    /// (default: three times `dead_ms.max`).
    pub idle_ms: Option<u32>,
    /// QUIC: handshakes in flight, at most (default 64).
    pub max_handshakes: Option<usize>,
    /// UDP: IPv6 source addresses with a link id at once, at most (default 65536).
    pub v6_links: Option<usize>,
    /// Refuse every device that joins without a pre-shared key or a certificate (default
    /// false: without either, anyone who knows a device's name can join as it).
    pub require_auth: Option<bool>,
    /// Let a computation move from an authenticated device to a less authenticated one
    /// (default false).
    pub allow_auth_downgrade: Option<bool>,
    /// Answers to refused bottles, per second per source (default 10).
    pub refusals_per_source_per_s: Option<u32>,
    /// Answers to refused bottles, per second in all (default 200).
    pub refusals_per_s: Option<u32>,
}

/// How durable the journal is before the AC acknowledges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Synced to disk.
    #[default]
    Sync,
    /// Written to the operating system.
    Os,
}

/// `{ min = …, max = … }` in milliseconds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeMs {
    /// Smallest value.
    pub min: u32,
    /// Largest value.
    pub max: u32,
}

impl RangeMs {
    /// The range as the controller's bounds.
    pub fn bounds(&self) -> Bounds {
        Bounds::new(ms(self.min), ms(self.max))
    }
}

/// Milliseconds of the file as a duration.
fn ms(millis: u32) -> Duration {
    Duration::from_millis(millis.into())
}

/// A state mode by name.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeName {
    /// State on HELLO.
    Joined,
    /// State on STATE.
    Split,
}

/// One thing wrong with a configuration: where it is (a TOML key path such as
/// `ac.hello_ms.min`, or empty for the file as a whole) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The TOML key path, or another name of the place (a file).
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem at `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.key.is_empty() {
            true => f.write_str(&self.message),
            false => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// `problems`, one a line, indented under a line naming `path`.
pub fn list_problems(path: &Path, problems: &[Problem]) -> String {
    let mut out = format!("{}: {} problem(s):", path.display(), problems.len());
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&p.to_string().replace('\n', "\n    "));
    }
    out
}

/// Why a configuration file was refused; each problem names its key.
#[derive(Debug, thiserror::Error)]
pub enum AcConfigError {
    /// The file could not be read.
    #[error("{0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// The file has these problems: syntax, unknown or mistyped keys, values out of
    /// range, names or references the controller refuses, unreadable key files.
    #[error("{}", list_problems(.0, .1))]
    Invalid(PathBuf, Vec<Problem>),
    /// The operating system gave no random bytes.
    #[error("no entropy from the operating system: {0}")]
    Entropy(String),
}

/// The key path a TOML error names inside `prefix` (the display ends in "in `a.b`" when
/// it has one).
fn key_of(prefix: &str, e: &toml::de::Error) -> String {
    let inner = e.to_string();
    let inner = inner
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("in `")?.strip_suffix('`').map(String::from));
    match inner {
        Some(k) => format!("{prefix}.{k}"),
        None => prefix.into(),
    }
}

/// Deserializes the section at `key`, noting its problem.
fn section<T: DeserializeOwned>(
    value: toml::Value,
    key: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    value
        .try_into()
        .map_err(|e| problems.push(Problem::new(key_of(key, &e), e.message())))
        .ok()
}

/// What a registry entry is read from: its part of the file (at an offset), or a value
/// of the rest of the file (an inline array's item).
enum Source<'t> {
    Part(&'t str, usize),
    Value(toml::Value),
}

/// Reads the entry at `key` from `source`, noting its problem.
fn read_entry<T: DeserializeOwned>(
    key: &str,
    source: Source,
    lines: &mut Lines,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    match source {
        Source::Part(text, at) => split::entry(text)
            .map_err(|e| match e {
                EntryError::Syntax(e) => {
                    let offset = at + e.span().map_or(0, |s| s.start);
                    problems.push(Problem::new(key, lines.syntax_error(offset, e.message())))
                }
                EntryError::Value(e) => problems.push(Problem::new(key_of(key, &e), e.message())),
            })
            .ok(),
        Source::Value(v) => section(v, key, problems),
    }
}

/// Reads the next entry of `section` (one of [`SECTIONS`]) into `registry`.
fn add_entry(
    registry: &mut Registry,
    section: &str,
    source: Source,
    base: &Path,
    lines: &mut Lines,
    problems: &mut Vec<Problem>,
) {
    let key = registry.next_key(section);
    let added = match section {
        "device" => read_entry(&key, source, lines, problems)
            .map(|d| registry.device(&key, d, base, problems)),
        "computation" => read_entry(&key, source, lines, problems).map(|c| registry.computation(c)),
        "device_group" => read_entry(&key, source, lines, problems)
            .map(|g| registry.device_group(key, g, problems)),
        _ => read_entry(&key, source, lines, problems)
            .map(|g| registry.computation_group(key, g, problems)),
    };
    if added.is_none() {
        registry.refuse();
    }
}

/// The file's sections.
struct Parsed {
    ac: AcSection,
    status: Option<StatusSection>,
    etcd: Option<EtcdSection>,
    registry: Built,
}

/// The parts of `text` that are not registry entries, as one document.
fn rest_of(text: &str) -> Rest {
    let mut rest = Rest::default();
    for part in Parts::new(text, &SECTIONS).filter(|p| p.entry.is_none()) {
        rest.push(text, part.range);
    }
    rest
}

/// The table of the rest of `text`, or its syntax error.
fn rest_table<T: DeserializeOwned>(text: &str, rest: &Rest) -> Result<T, Problem> {
    toml::from_str(&rest.text).map_err(|e| {
        let at = rest.origin(e.span().map_or(0, |s| s.start));
        Problem::new("", Lines::new(text).syntax_error(at, e.message()))
    })
}

/// Parses the file's text, noting the problem of each section and entry; key files are
/// read from `base`.
fn parse(text: &str, base: &Path, problems: &mut Vec<Problem>) -> Option<Parsed> {
    let mut registry = Registry::default();
    let mut rest = Rest::default();
    let mut lines = Lines::new(text);
    for part in Parts::new(text, &SECTIONS) {
        match part.entry {
            Some(section) => {
                let source = Source::Part(&text[part.range.clone()], part.range.start);
                add_entry(&mut registry, section, source, base, &mut lines, problems);
            }
            None => rest.push(text, part.range),
        }
    }
    let mut table: toml::Table = match rest_table(text, &rest) {
        Ok(table) => table,
        Err(p) => {
            problems.push(p);
            return None;
        }
    };
    drop(rest);
    // Entries written as inline arrays (`device = [{ … }]`) rather than tables.
    for section in SECTIONS {
        let Some(value) = table.remove(section) else {
            continue;
        };
        let toml::Value::Array(list) = value else {
            problems.push(Problem::new(
                section,
                format!("must be a list: [[{section}]]"),
            ));
            registry.refuse();
            continue;
        };
        if registry.has(section) {
            let twice = format!("defined twice: as a value and as [[{section}]] tables");
            problems.push(Problem::new(section, twice));
            registry.refuse();
            continue;
        }
        for v in list {
            let source = Source::Value(v);
            add_entry(&mut registry, section, source, base, &mut lines, problems);
        }
    }
    let ac = match table.remove("ac") {
        Some(v) => section(v, "ac", problems),
        None => {
            problems.push(Problem::new("ac", "missing: the [ac] section is required"));
            None
        }
    };
    let status = match table.remove("status") {
        Some(v) => Some(section(v, "status", problems)?),
        None => None,
    };
    let etcd = match table.remove("etcd") {
        Some(v) => Some(section(v, "etcd", problems)?),
        None => None,
    };
    for key in table.keys() {
        problems.push(Problem::new(
            key.as_str(),
            "unknown section: expected ac, status, etcd, device, computation, device_group \
             or computation_group",
        ));
    }
    let registry = registry.finish(base, problems);
    Some(Parsed {
        ac: ac?,
        status,
        etcd,
        registry: registry?,
    })
}

/// The settings only the AC has: none may be zero.
fn ac_problems(a: &AcSection, problems: &mut Vec<Problem>) {
    let zero = |v: Option<usize>| v == Some(0);
    let checks = [
        ("first_bottle_ms", a.first_bottle_ms == Some(0), "1 ms"),
        ("idle_ms", a.idle_ms == Some(0), "1 ms"),
        ("max_connections", zero(a.max_connections), "1"),
        ("max_handshakes", zero(a.max_handshakes), "1"),
        ("v6_links", zero(a.v6_links), "1"),
    ];
    for (key, bad, least) in checks {
        if bad {
            problems.push(Problem::new(
                format!("ac.{key}"),
                format!("must be at least {least}"),
            ));
        }
    }
}

/// Most problems shown with the same key: the members of a group share theirs.
const SHOWN_PER_KEY: usize = 3;

/// Pushes `found` onto `problems`, but at most [`SHOWN_PER_KEY`] with the same key, and
/// then one more that counts the others.
fn push_per_key(problems: &mut Vec<Problem>, found: impl Iterator<Item = Problem>) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut crowded = Vec::new();
    for p in found {
        let n = counts.entry(p.key.clone()).or_default();
        *n += 1;
        match *n {
            n if n <= SHOWN_PER_KEY => problems.push(p),
            n if n == SHOWN_PER_KEY + 1 => crowded.push(p.key),
            _ => {}
        }
    }
    for key in crowded {
        let more = counts[&key] - SHOWN_PER_KEY;
        problems.push(Problem::new(key, format!("and {more} more like these")));
    }
}

/// A controller's setting out of range, named by its key in `[ac]`, with the rule.
fn setting_problem(
    setting: &str,
    a: &AcSection,
    cfg: &ControllerConfig,
    e: &ConfigError,
) -> Problem {
    let zero_min = |r: &Option<RangeMs>| r.as_ref().is_some_and(|r| r.min == 0);
    let (key, rule) = match setting {
        "hello" if zero_min(&a.hello_ms) => ("hello_ms.min", "must be at least 1 ms".into()),
        "dead" if zero_min(&a.dead_ms) => ("dead_ms.min", "must be at least 1 ms".into()),
        "hello" => ("hello_ms", "min must not exceed max".into()),
        "dead" => ("dead_ms", "min must not exceed max".into()),
        "morph_timeout" => ("morph_timeout_ms", "must be at least 1 ms".into()),
        "dead_grid" => ("dead_grid_ms", "must not exceed dead_ms.min".into()),
        "stall_grace" => ("stall_grace_ms", "must be at least 1 ms".into()),
        "limits.max_bottle" => (
            "max_bottle",
            format!("must be 64 to {} bytes", pcxses_core::MAX_BOTTLE_LEN),
        ),
        "limits.max_state" => (
            "max_state",
            format!(
                "must fit one MORPH: at most {} bytes",
                cfg.limits.max_transfer
            ),
        ),
        "refusals" if a.refusals_per_source_per_s == Some(0) => {
            ("refusals_per_source_per_s", "must be at least 1".into())
        }
        "refusals" => ("refusals_per_s", "must be at least 1".into()),
        "max_morphs_per_target" => ("max_morphs_per_target", "must be at least 1".into()),
        "quarantine_after" => ("quarantine_after", "must be at least 1".into()),
        "devices" => return Problem::new("device", "at most 1,048,576 devices"),
        _ => return Problem::new("", e.to_string()),
    };
    Problem::new(format!("ac.{key}"), rule)
}

/// A loaded configuration: the controller's and where things are.
#[derive(Debug)]
pub struct AcConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The repository directory.
    pub repository: PathBuf,
    /// The controller's configuration, validated.
    pub controller: ControllerConfig,
    /// The code-signing key file, if manifests are signed.
    pub code_signing_key: Option<PathBuf>,
    /// The journal file, if the AC keeps one, and how durable it is.
    pub journal: Option<(PathBuf, Durability)>,
    /// The transports' bounds on connections and link ids.
    pub limits: TransportLimits,
    /// Where to serve `/status` and `/metrics`, if anywhere.
    pub status: Option<SocketAddr>,
    /// The etcd cluster the area's ACs stand by for each other on, if any.
    pub etcd: Option<EtcdSection>,
    /// Where each of the controller's devices and computations is written in the file.
    pub origins: Origins,
}

impl AcConfig {
    /// Reads and validates the file at `path`, listing every problem found.
    pub fn load(path: &Path) -> Result<AcConfig, AcConfigError> {
        let (config, problems) = AcConfig::read(path)?;
        match problems.is_empty() {
            true => Ok(config),
            false => Err(AcConfigError::Invalid(path.into(), problems)),
        }
    }

    /// Reads the file at `path` as [`AcConfig::load`] does, but gives the configuration
    /// with its problems, so that what it names can be checked too; an error only when
    /// the file cannot be read or parsed at all.
    pub fn read(path: &Path) -> Result<(AcConfig, Vec<Problem>), AcConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| AcConfigError::Read(path.into(), e))?;
        let mut problems = Vec::new();
        let invalid = |problems| AcConfigError::Invalid(path.into(), problems);
        let base = path.parent().unwrap_or(Path::new("."));
        let parsed = parse(&text, base, &mut problems);
        drop(text);
        let Some(Parsed {
            ac: a,
            status,
            etcd,
            registry,
        }) = parsed
        else {
            return Err(invalid(problems));
        };
        ac_problems(&a, &mut problems);
        if let Some(e) = &etcd {
            if a.journal.is_some() {
                problems.push(Problem::new(
                    "ac.journal",
                    "the journal is in etcd when [etcd] is there: remove one",
                ));
            }
            if e.endpoints.is_empty() || e.prefix.is_empty() {
                problems.push(Problem::new(
                    "etcd",
                    "endpoints and prefix must not be empty",
                ));
            }
            if e.lease_ttl_s == Some(0) || e.timeout_ms == Some(0) {
                problems.push(Problem::new(
                    "etcd",
                    "lease_ttl_s and timeout_ms must not be zero",
                ));
            }
            if e.timeout_ms() > e.lease_ttl().as_millis() as u64 {
                problems.push(Problem::new(
                    "etcd",
                    "timeout_ms must not be longer than the lease (lease_ttl_s)",
                ));
            }
        }
        let seed = match a.seed {
            Some(seed) => seed,
            None => getrandom::u64().map_err(|e| AcConfigError::Entropy(e.to_string()))?,
        };
        let origins = registry.origins;
        let mut cfg = ControllerConfig::new(seed, registry.devices, registry.computations);
        if let Some(r) = &a.hello_ms {
            cfg.hello = r.bounds();
        }
        if let Some(r) = &a.dead_ms {
            cfg.dead = r.bounds();
        }
        cfg.mode = a.mode.map(|m| match m {
            ModeName::Joined => StateMode::InHello,
            ModeName::Split => StateMode::Separate,
        });
        cfg.fencing = a.fencing.unwrap_or(cfg.fencing);
        cfg.limits.max_bottle = a.max_bottle.unwrap_or(cfg.limits.max_bottle);
        cfg.limits.max_state = a.max_state.unwrap_or(cfg.limits.max_state);
        cfg.morph_timeout = a.morph_timeout_ms.map_or(cfg.morph_timeout, ms);
        cfg.max_morphs_per_target = a.max_morphs_per_target.unwrap_or(cfg.max_morphs_per_target);
        cfg.quarantine_after = a.quarantine_after.unwrap_or(cfg.quarantine_after);
        cfg.quarantine_retry = a.quarantine_retry_ms.map_or(cfg.quarantine_retry, ms);
        cfg.morphs_per_s = a.morphs_per_s.unwrap_or(cfg.morphs_per_s);
        cfg.morph_burst = a.morph_burst.unwrap_or(cfg.morph_burst);
        cfg.dead_grid = a.dead_grid_ms.map_or(cfg.dead_grid, ms);
        cfg.stall_grace = a.stall_grace_ms.map_or(cfg.stall_grace, ms);
        cfg.restart_grace = a.restart_grace_ms.map_or(cfg.restart_grace, ms);
        cfg.require_auth = a.require_auth.unwrap_or(cfg.require_auth);
        cfg.allow_auth_downgrade = a.allow_auth_downgrade.unwrap_or(cfg.allow_auth_downgrade);
        let r = &mut cfg.refusals;
        r.per_source_per_s = a.refusals_per_source_per_s.unwrap_or(r.per_source_per_s);
        r.total_per_s = a.refusals_per_s.unwrap_or(r.total_per_s);
        let mut keys = ErrorKeys::new(&cfg.devices, &cfg.computations, &origins);
        let found = cfg.errors().into_iter().map(|e| match &e {
            ConfigError::Setting(setting) => setting_problem(setting, &a, &cfg, &e),
            _ => Problem::new(keys.key(&e).unwrap_or_default(), e.to_string()),
        });
        push_per_key(&mut problems, found);
        let mut connections = ConnectionLimits::for_intervals(cfg.hello.max, cfg.dead.max);
        connections.max_connections = a.max_connections.unwrap_or(connections.max_connections);
        connections.max_handshakes = a.max_handshakes.unwrap_or(connections.max_handshakes);
        if let Some(ms) = a.first_bottle_ms {
            connections.first_bottle = Duration::from_millis(ms.into());
        }
        if let Some(ms) = a.idle_ms {
            connections.idle = Duration::from_millis(ms.into());
        }
        let limits = TransportLimits {
            connections,
            v6_links: a.v6_links.unwrap_or(TransportLimits::default().v6_links),
        };
        let config = AcConfig {
            listen: a.listen,
            repository: base.join(&a.repository),
            controller: cfg,
            code_signing_key: a.code_signing_key.as_ref().map(|k| base.join(k)),
            journal: a
                .journal
                .as_ref()
                .map(|j| (base.join(j), a.durability.unwrap_or_default())),
            limits,
            status: status.map(|s| s.listen),
            etcd,
            origins,
        };
        Ok((config, problems))
    }

    /// The status address of the file at `path` (its `[status] listen`), reading nothing
    /// else of it (its registry skipped unread): what `pcxses-ac status --config` asks.
    pub fn status_addr(path: &Path) -> Result<Option<SocketAddr>, AcConfigError> {
        /// The file, every other section ignored.
        #[derive(Deserialize)]
        struct StatusOnly {
            status: Option<StatusSection>,
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| AcConfigError::Read(path.into(), e))?;
        let file: StatusOnly = rest_table(&text, &rest_of(&text))
            .map_err(|p| AcConfigError::Invalid(path.into(), vec![p]))?;
        Ok(file.status.map(|s| s.listen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads `text` from a file of its own: tests run in parallel.
    fn load(text: &str) -> Result<AcConfig, AcConfigError> {
        static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pcxses-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{n}.toml"));
        std::fs::write(&path, text).unwrap();
        AcConfig::load(&path)
    }

    /// The sample configuration beside the crate: what the README runs.
    const GOOD: &str = include_str!("../config/ac.toml");

    #[test]
    fn a_good_file_loads() {
        let cfg = load(GOOD).unwrap();
        assert_eq!(
            cfg.controller.hello,
            Bounds::new(Duration::from_millis(50), Duration::from_secs(10))
        );
        assert_eq!(cfg.controller.devices[0].runs, ["counter-alpha"]);
        assert!(cfg.repository.ends_with("repo"));
    }

    #[test]
    fn connection_limits_default_from_the_intervals_and_load_from_the_file() {
        let cfg = load(GOOD).unwrap();
        let c = cfg.limits.connections;
        assert_eq!(c.max_connections, ConnectionLimits::MAX_CONNECTIONS);
        assert_eq!(c.first_bottle, Duration::from_secs(20));
        assert_eq!(c.idle, 3 * cfg.controller.dead.max);
        let set = load(&GOOD.replace(
            "repository = \"repo\"",
            "repository = \"repo\"\nmax_connections = 7\nfirst_bottle_ms = 300\nidle_ms = 900\nmax_handshakes = 3\nv6_links = 5",
        ))
        .unwrap();
        let c = set.limits.connections;
        assert_eq!(c.max_connections, 7);
        assert_eq!(c.first_bottle, Duration::from_millis(300));
        assert_eq!(c.idle, Duration::from_millis(900));
        assert_eq!(c.max_handshakes, 3);
        assert_eq!(set.limits.v6_links, 5);
    }

    #[test]
    fn the_status_endpoint_is_off_unless_its_section_is_there() {
        assert_eq!(load(GOOD).unwrap().status, None);
        let text = format!("{GOOD}\n[status]\nlisten = \"127.0.0.1:4780\"\n");
        let addr: SocketAddr = "127.0.0.1:4780".parse().unwrap();
        assert_eq!(load(&text).unwrap().status, Some(addr));
        let misspelt = load(&text.replace("listen = \"127", "lisen = \"127"))
            .unwrap_err()
            .to_string();
        assert!(misspelt.contains("lisen"), "{misspelt}");
        // `pcxses-ac status --config` reads the section alone.
        let path = std::env::temp_dir().join(format!("pcxses-status-{}.toml", std::process::id()));
        std::fs::write(&path, &text).unwrap();
        assert_eq!(AcConfig::status_addr(&path).unwrap(), Some(addr));
        std::fs::write(&path, GOOD).unwrap();
        assert_eq!(AcConfig::status_addr(&path).unwrap(), None);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn errors_name_the_bad_key() {
        let unknown = load(&GOOD.replace("hello_ms", "helo_ms"))
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("helo_ms"), "{unknown}");
        let mistyped = load(&GOOD.replace("min = 50", "min = \"fifty\""))
            .unwrap_err()
            .to_string();
        assert!(mistyped.contains("min"), "{mistyped}");
        let dangling = load(&GOOD.replace("runs = [\"counter-alpha\"]", "runs = [\"d\"]"))
            .unwrap_err()
            .to_string();
        assert!(dangling.contains("\"d\""), "{dangling}");
    }

    /// The problems of the sample file with `extra` added to its `[ac]` section.
    fn problems(extra: &str) -> String {
        let text = GOOD.replacen("[ac]\n", &format!("[ac]\n{extra}\n"), 1);
        load(&text).map(|_| ()).unwrap_err().to_string()
    }

    #[test]
    fn every_setting_out_of_range_names_its_key() {
        for (extra, named) in [
            (
                "max_morphs_per_target = 70000",
                "ac.max_morphs_per_target: invalid value",
            ),
            (
                "quarantine_after = -1",
                "ac.quarantine_after: invalid value",
            ),
            ("max_state = \"big\"", "ac.max_state: invalid type"),
            (
                "morph_timeout_ms = 0",
                "ac.morph_timeout_ms: must be at least 1 ms",
            ),
            (
                "stall_grace_ms = 0",
                "ac.stall_grace_ms: must be at least 1 ms",
            ),
            (
                "dead_grid_ms = 100000",
                "ac.dead_grid_ms: must not exceed dead_ms.min",
            ),
            (
                "first_bottle_ms = 0",
                "ac.first_bottle_ms: must be at least 1 ms",
            ),
            ("idle_ms = 0", "ac.idle_ms: must be at least 1 ms"),
            (
                "max_connections = 0",
                "ac.max_connections: must be at least 1",
            ),
            (
                "max_handshakes = 0",
                "ac.max_handshakes: must be at least 1",
            ),
            ("v6_links = 0", "ac.v6_links: must be at least 1"),
            (
                "max_state = 4194305",
                "ac.max_state: must fit one MORPH: at most 4194304",
            ),
            (
                "max_bottle = 63",
                "ac.max_bottle: must be 64 to 65535 bytes",
            ),
            (
                "refusals_per_s = 0",
                "ac.refusals_per_s: must be at least 1",
            ),
            (
                "refusals_per_source_per_s = 0",
                "ac.refusals_per_source_per_s: must be",
            ),
            (
                "max_morphs_per_target = 0",
                "ac.max_morphs_per_target: must be at least 1",
            ),
            (
                "quarantine_after = 0",
                "ac.quarantine_after: must be at least 1",
            ),
        ] {
            let p = problems(extra);
            assert!(p.contains(named), "{extra}: {p}");
        }
        let zero_hello = GOOD.replace("min = 50", "min = 0");
        let p = load(&zero_hello).map(|_| ()).unwrap_err().to_string();
        assert!(p.contains("ac.hello_ms.min: must be at least 1 ms"), "{p}");
        let inverted = GOOD.replace("min = 150", "min = 70000");
        let p = load(&inverted).map(|_| ()).unwrap_err().to_string();
        assert!(p.contains("ac.dead_ms: min must not exceed max"), "{p}");
    }

    #[test]
    fn every_problem_is_listed_with_its_key() {
        let text = GOOD
            .replacen("[ac]\n", "[ac]\nmorph_timeout_ms = 0\nidle_ms = 0\n", 1)
            .replace("name = \"beta\"", "name = \"alpha\"")
            .replace(
                "runs = [\"counter-beta\"]",
                "runs = []\npsk_file = \"absent.psk\"",
            )
            + "\n[[computation]]\nname = \"c3\"\nobjects = []\nhosts = [\"ghost\"]\n";
        let p = load(&text).map(|_| ()).unwrap_err().to_string();
        for named in [
            "6 problem(s)",
            "ac.idle_ms: must be at least 1 ms",
            "device[1].psk_file: ",
            "device[1].name: \"alpha\" is defined twice",
            "computation[2].objects: computation \"c3\" must have 1 to 8 objects",
            "computation[2].hosts: unknown device \"ghost\"",
            "ac.morph_timeout_ms: must be at least 1 ms",
        ] {
            assert!(p.contains(named), "{named} not in: {p}");
        }
        let p = load(&(GOOD.to_string() + "\n[[device]]\nname = 3\n[[computation]]\nnom = 1\n"))
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(p.contains("device[2].name: invalid type"), "{p}");
        assert!(p.contains("computation[2]: unknown field `nom`"), "{p}");
        let p = load("[ac]\nlisten = \"127.0.0.1:1\"\n[extra]\n")
            .map(|_| ())
            .unwrap_err();
        let p = p.to_string();
        assert!(p.contains("ac: missing field `repository`"), "{p}");
        assert!(p.contains("extra: unknown section"), "{p}");
    }

    /// The sample's `[ac]` section with `registry` after it.
    fn with_registry(registry: &str) -> String {
        let ac = &GOOD[..GOOD.find("[[device]]").unwrap()];
        format!("{ac}{registry}")
    }

    /// A device group and a computation group, each device running its own computation.
    const FLEET: &str = "[[device_group]]\nname = \"load-{:03}\"\ncount = 20\nfirst = 5\n\
        runs = [\"c-{:03}\"]\ncapabilities = [\"wasm\"]\nmax_hosted = 4\n\n\
        [[computation_group]]\nname = \"c-{:03}\"\ncount = 20\nfirst = 5\n\
        objects = [{ id = \"counter.bin\", invoke = true }]\nhosts = [\"load-{:03}\", \"alpha\"]\n";

    #[test]
    fn groups_expand_after_the_entries() {
        let text = with_registry(&format!(
            "{FLEET}\n{}",
            &GOOD[GOOD.find("[[device]]").unwrap()..]
        ));
        let cfg = load(&text).unwrap();
        let c = &cfg.controller;
        assert_eq!((c.devices.len(), c.computations.len()), (22, 22));
        assert_eq!(c.devices[0].name, "alpha");
        let d = &c.devices[2];
        assert_eq!(
            (d.name.as_str(), &d.runs[..]),
            ("load-005", &["c-005".to_string()][..])
        );
        assert_eq!(
            (d.capabilities.clone(), d.max_hosted),
            (vec!["wasm".into()], 4)
        );
        assert_eq!(c.devices[21].name, "load-024");
        let last = &c.computations[21];
        assert_eq!(last.name, "c-024");
        assert_eq!(last.hosts, ["load-024", "alpha"]);
        assert_eq!(last.objects[0].id, "counter.bin");
        assert_eq!(cfg.origins.device_key(21, "runs"), "device_group[0].runs");
        assert_eq!(
            cfg.origins.computation_key(1, "name"),
            "computation[1].name"
        );
    }

    #[test]
    fn group_problems_name_their_keys() {
        for (change, named) in [
            (("count = 20\nfirst", "count = 0\nfirst"), "device_group[0].count: must be 1 to 1048576"),
            (("count = 20\nfirst", "count = 1048577\nfirst"), "device_group[0].count: must be 1 to"),
            (("count = 20\nfirst", "count = -1\nfirst"), "device_group[0].count: invalid value"),
            (("\"load-{:03}\"\ncount", "\"load\"\ncount"), "device_group[0].name: \"load\" has no placeholder"),
            (("\"load-{:03}\"\ncount", "\"l{}-{}\"\ncount"), "device_group[0].name: \"l{}-{}\": only one placeholder"),
            (("\"load-{:03}\"\ncount", "\"l{:3}\"\ncount"), "device_group[0].name: \"l{:3}\": a brace must belong"),
            (("runs = [\"c-{:03}\"]", "runs = [\"c-{:03}\", \"x{\"]"), "device_group[0].runs[1]: \"x{\": a brace"),
            (("hosts = [\"load-{:03}\"", "hosts = [\"load-}\""), "computation_group[0].hosts[0]: \"load-}\""),
            (("max_hosted = 4", "max_hosted = 4\npsk_file = \"keys.psk\""), "device_group[0].psk_file: \"keys.psk\" has no placeholder"),
            (("max_hosted = 4", "max_hosted = 4\npsk_file = \"k/{}.psk\""), "(and 19 more members' key files)"),
            (("max_hosted = 4", "max_hosted = 4\nmax_hostd = 4"), "device_group[0]: unknown field `max_hostd`"),
            (("count = 20\nfirst = 5\nobjects", "count = 8388609\nfirst = 5\nobjects"), "computation_group[0].count: must be 1 to 8388608"),
            (("runs = [\"c-{:03}\"]", "runs = [\"c-0{:03}\"]"), "device_group[0].runs: unknown computation \"c-0005\""),
            (("runs = [\"c-{:03}\"]", "runs = [\"c-0{:03}\"]"), "device_group[0].runs: and 17 more like these"),
            (("runs = [\"c-{:03}\"]", "runs = [\"c-005\"]"), "device_group[0].runs: computation \"c-005\" is run natively by two devices"),
            (
                ("\"load-{:03}\"\ncount", "\"a-very-long-device-name-number-{}\"\ncount"),
                "device_group[0].name: name \"a-very-long-device-name-number-10\" is empty or longer",
            ),
        ] {
            let fleet = FLEET.replacen(change.0, change.1, 1);
            let text = with_registry(&fleet);
            let p = load(&text).map(|_| ()).unwrap_err().to_string();
            assert!(p.contains(named), "{named} not in: {p}");
        }
        // Names are unique across groups and entries.
        let text = with_registry(&format!(
            "{FLEET}\n[[device]]\nname = \"load-007\"\n[[device_group]]\nname = \"load-0{{:02}}\"\ncount = 3\nfirst = 5\n"
        ));
        let p = load(&text).map(|_| ()).unwrap_err().to_string();
        assert!(
            p.contains("device_group[1].name: \"load-005\" is defined twice"),
            "{p}"
        );
        assert!(
            p.contains("device_group[1].name: \"load-007\" is defined twice"),
            "{p}"
        );
        // The devices of all groups together fit one controller.
        let text = with_registry(&format!(
            "{FLEET}\n[[device_group]]\nname = \"m{{}}\"\ncount = 1048570\n"
        ));
        let p = load(&text).map(|_| ()).unwrap_err().to_string();
        assert!(
            p.contains("device_group[1].count: with this group the registry has 1048590 devices: at most 1048576"),
            "{p}"
        );
    }

    #[test]
    fn entries_read_in_parts_keep_their_keys_and_lines() {
        let text = GOOD.to_string()
            + "\n[[device]]\nname = \"gamma\nruns = []\n[[computation]]\nname = 1\n";
        let p = load(&text).map(|_| ()).unwrap_err().to_string();
        let line = text.lines().position(|l| l == "name = \"gamma").unwrap() + 1;
        assert!(
            p.contains(&format!("device[2]: TOML parse error at line {line}")),
            "{p}"
        );
        assert!(p.contains("computation[2].name: invalid type"), "{p}");
        // A syntax error in the other sections names its line in the whole file.
        let text = GOOD.replace("dead_ms = {", "dead_ms = {{");
        let p = load(&text).map(|_| ()).unwrap_err().to_string();
        let line = text.lines().position(|l| l.starts_with("dead_ms")).unwrap() + 1;
        assert!(
            p.contains(&format!("TOML parse error at line {line}")),
            "{p}"
        );
        // Entries may be inline arrays too, but not both.
        let inline = GOOD.replacen(
            "[ac]",
            "device = [{ name = \"alpha\", runs = [\"counter-alpha\"] }]\n[ac]",
            1,
        );
        let p = load(&inline).map(|_| ()).unwrap_err().to_string();
        assert!(p.contains("device: defined twice"), "{p}");
        let end = inline.find("[[device]]").unwrap();
        let start = inline.find("[[computation]]").unwrap();
        let inline = format!("{}{}", &inline[..end], &inline[start..]);
        let cfg = load(&inline).unwrap();
        assert_eq!(cfg.controller.devices.len(), 1);
    }
}
