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

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pcxses_core::controller::{Bounds, ComputationSpec, DeviceSpec, ObjectSpec};
use pcxses_core::wire::StateMode;
use pcxses_core::{ControllerConfig, MAX_HOSTED};
use pcxses_transport_tcp::ConnectionLimits;
use serde::Deserialize;

use pcxses_program::transport::TransportLimits;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcFile {
    /// The AC's own settings.
    pub ac: AcSection,
    /// The devices.
    #[serde(default, rename = "device")]
    pub devices: Vec<DeviceEntry>,
    /// The computations.
    #[serde(default, rename = "computation")]
    pub computations: Vec<ComputationEntry>,
    /// The status and metrics endpoint; off without it.
    pub status: Option<StatusSection>,
}

/// `[status]`: where the AC serves `/status` and `/metrics` over HTTP (see
/// [`crate::http`]). Without this section (or `--status-listen`), the AC serves neither.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusSection {
    /// Address to serve on; keep it on loopback unless the network is trusted: the status
    /// names every device and its address.
    pub listen: SocketAddr,
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

/// `[[device]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceEntry {
    /// Its name.
    pub name: String,
    /// Computations it runs natively.
    #[serde(default)]
    pub runs: Vec<String>,
    /// Capabilities it offers.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Most computations it may run.
    pub max_hosted: Option<u16>,
    /// File holding the key it shares with the AC (hex), relative to this file: the device
    /// must then join and talk in pre-shared-key mode (see `pcxses-ac psk`).
    pub psk_file: Option<PathBuf>,
}

/// `[[computation]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComputationEntry {
    /// Its name.
    pub name: String,
    /// Its objects, in shipping order.
    pub objects: Vec<ObjectEntry>,
    /// Devices allowed to host it, in order of preference.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Capabilities a host needs.
    #[serde(default)]
    pub requires: Vec<String>,
}

/// `{ id = "…", invoke = true }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectEntry {
    /// The object's id in the repository.
    pub id: String,
    /// Whether the target starts it.
    #[serde(default)]
    pub invoke: bool,
}

/// Why a configuration file was refused; the message names the file and the bad key.
#[derive(Debug, thiserror::Error)]
pub enum AcConfigError {
    /// The file could not be read.
    #[error("{0}: {1}")]
    Read(PathBuf, std::io::Error),
    /// The TOML is invalid or has an unknown or mistyped key.
    #[error("{0}: {1}")]
    Parse(PathBuf, String),
    /// The values are inconsistent.
    #[error("{0}: {1}")]
    Invalid(PathBuf, pcxses_core::controller::ConfigError),
    /// A key file could not be used.
    #[error("{0}: {1}")]
    Key(PathBuf, String),
    /// The operating system gave no random bytes.
    #[error("no entropy from the operating system: {0}")]
    Entropy(String),
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
}

impl AcConfig {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<AcConfig, AcConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| AcConfigError::Read(path.into(), e))?;
        let file: AcFile =
            toml::from_str(&text).map_err(|e| AcConfigError::Parse(path.into(), e.to_string()))?;
        let seed = match file.ac.seed {
            Some(seed) => seed,
            None => getrandom::u64().map_err(|e| AcConfigError::Entropy(e.to_string()))?,
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let devices = file
            .devices
            .iter()
            .map(|d| {
                let psk = d
                    .psk_file
                    .as_ref()
                    .map(|f| pcxses_program::keys::psk(&base.join(f)))
                    .transpose()
                    .map_err(|e| AcConfigError::Key(path.into(), e))?;
                Ok(DeviceSpec {
                    name: d.name.clone(),
                    runs: d.runs.clone(),
                    capabilities: d.capabilities.clone(),
                    max_hosted: d.max_hosted.unwrap_or(MAX_HOSTED as u16),
                    psk,
                })
            })
            .collect::<Result<_, AcConfigError>>()?;
        let computations = file
            .computations
            .iter()
            .map(|c| ComputationSpec {
                name: c.name.clone(),
                objects: c
                    .objects
                    .iter()
                    .map(|o| ObjectSpec {
                        id: o.id.clone(),
                        invoke: o.invoke,
                    })
                    .collect(),
                hosts: c.hosts.clone(),
                requires: c.requires.clone(),
            })
            .collect();
        let mut cfg = ControllerConfig::new(seed, devices, computations);
        let a = &file.ac;
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
        cfg.stall_grace = a.stall_grace_ms.map_or(cfg.stall_grace, ms);
        cfg.restart_grace = a.restart_grace_ms.map_or(cfg.restart_grace, ms);
        cfg.require_auth = a.require_auth.unwrap_or(cfg.require_auth);
        cfg.allow_auth_downgrade = a.allow_auth_downgrade.unwrap_or(cfg.allow_auth_downgrade);
        let r = &mut cfg.refusals;
        r.per_source_per_s = a.refusals_per_source_per_s.unwrap_or(r.per_source_per_s);
        r.total_per_s = a.refusals_per_s.unwrap_or(r.total_per_s);
        cfg.validate()
            .map_err(|e| AcConfigError::Invalid(path.into(), e))?;
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
        Ok(AcConfig {
            listen: a.listen,
            repository: base.join(&a.repository),
            controller: cfg,
            code_signing_key: a.code_signing_key.as_ref().map(|k| base.join(k)),
            journal: a
                .journal
                .as_ref()
                .map(|j| (base.join(j), a.durability.unwrap_or_default())),
            limits,
            status: file.status.map(|s| s.listen),
        })
    }

    /// The status address of the file at `path` (its `[status] listen`), reading nothing
    /// else of it: what `pcxses-ac status --config` asks.
    pub fn status_addr(path: &Path) -> Result<Option<SocketAddr>, AcConfigError> {
        /// The file, every other section ignored.
        #[derive(Deserialize)]
        struct StatusOnly {
            status: Option<StatusSection>,
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| AcConfigError::Read(path.into(), e))?;
        let file: StatusOnly =
            toml::from_str(&text).map_err(|e| AcConfigError::Parse(path.into(), e.to_string()))?;
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
}
