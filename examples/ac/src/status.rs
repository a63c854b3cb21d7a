//! The AC's status as a JSON document, served at `/status`: each device's liveness,
//! session, address, age of its last HELLO and hosted computations; each computation's
//! placement, LKGS and recovery.
//!
//! ```json
//! {"devices": [{"name": "alpha", "liveness": "alive", "session": "5e1f04a2",
//!               "addr": "127.0.0.1:40712", "authenticated": false,
//!               "last_hello_ms": 42, "hello_ms": 100, "dead_ms": 600,
//!               "hosted": ["counter-alpha"], "incoming_morphs": 0}],
//!  "computations": [{"name": "counter-alpha", "home": "alpha", "placement": "running",
//!                    "host": "alpha", "lkgs_version": 12, "lkgs_bytes": 8,
//!                    "failures": 0, "quarantines": 0, "recovery": null,
//!                    "retry_in_ms": null}]}
//! ```
//!
//! A field without a value is `null`: a device that is not alive has no session, address
//! or HELLO; a computation that is not running has no host. Durations are whole
//! milliseconds.

use std::time::Duration;

use pcxses_core::controller::{ComputationStatus, DeviceStatus, Placement};
use pcxses_core::policy::AuthLevel;
use pcxses_driver::AcStatus;
use serde::{Deserialize, Serialize};

/// The whole document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDoc {
    /// The devices, in registry order.
    pub devices: Vec<DeviceDoc>,
    /// The computations, in registry order.
    pub computations: Vec<ComputationDoc>,
}

/// One device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDoc {
    /// Its name.
    pub name: String,
    /// `alive`, `dead` (declared dead), `left` (said GOOD_BYE or was dismissed) or
    /// `unseen` (not joined since the AC started).
    pub liveness: String,
    /// Its live session, in hex.
    pub session: Option<String>,
    /// The transport address its bottles come from, when the transport knows it.
    pub addr: Option<String>,
    /// Whether its session is authenticated (pre-shared key or certificate).
    pub authenticated: Option<bool>,
    /// How long ago its last HELLO arrived.
    pub last_hello_ms: Option<u64>,
    /// The agreed HELLO interval.
    pub hello_ms: Option<u64>,
    /// The agreed dead interval.
    pub dead_ms: Option<u64>,
    /// The computations it runs.
    pub hosted: Vec<String>,
    /// MORPH attempts towards it in flight.
    pub incoming_morphs: u16,
}

/// One computation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputationDoc {
    /// Its name.
    pub name: String,
    /// The device that runs it natively, if one does.
    pub home: Option<String>,
    /// `running`, `migrating` (a MORPH in flight), `waiting` (for a target with room),
    /// `orphaned` (no capable device alive), `quarantined`, `stopped` (its host left) or
    /// `unplaced` (its home has not joined).
    pub placement: String,
    /// The device it runs on, when `running`.
    pub host: Option<String>,
    /// The version of its LKGS in the session it came from; 0: none stored.
    pub lkgs_version: u32,
    /// The length of its LKGS.
    pub lkgs_bytes: usize,
    /// Consecutive failed targets.
    pub failures: u32,
    /// Quarantines in a row.
    pub quarantines: u32,
    /// The recovery under way.
    pub recovery: Option<RecoveryDoc>,
    /// When quarantined: the time until it is tried again, if it will be.
    pub retry_in_ms: Option<u64>,
}

/// A recovery under way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryDoc {
    /// The failed device it is recovered from.
    pub from: String,
    /// How long ago the failure was detected.
    pub since_ms: u64,
    /// MORPH attempts started.
    pub attempts: u32,
    /// The target of the MORPH in flight.
    pub target: Option<String>,
}

/// A placement's name in the document.
pub fn placement_name(p: Placement) -> &'static str {
    match p {
        Placement::Unplaced => "unplaced",
        Placement::Running(_) => "running",
        Placement::Migrating => "migrating",
        Placement::Waiting => "waiting",
        Placement::Orphaned => "orphaned",
        Placement::Quarantined => "quarantined",
        Placement::Stopped => "stopped",
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().try_into().unwrap_or(u64::MAX)
}

impl StatusDoc {
    /// The document of a running AC's status.
    pub fn new(status: &AcStatus) -> StatusDoc {
        let c = &status.controller;
        let device = |id: pcxses_core::controller::DeviceId| {
            c.devices
                .get(id.0 as usize)
                .map_or_else(|| "?".to_string(), |d| d.name.to_string())
        };
        let comp = |id: pcxses_core::controller::ComputationId| {
            c.computations
                .get(id.0 as usize)
                .map_or_else(|| "?".to_string(), |c| c.name.to_string())
        };
        let devices = (c.devices.iter().zip(&status.addrs))
            .map(|(d, addr)| device_doc(d, *addr, &comp))
            .collect();
        let computations = (c.computations.iter())
            .map(|s| computation_doc(s, &device))
            .collect();
        StatusDoc {
            devices,
            computations,
        }
    }
}

fn device_doc(
    d: &DeviceStatus,
    addr: Option<std::net::SocketAddr>,
    comp: &dyn Fn(pcxses_core::controller::ComputationId) -> String,
) -> DeviceDoc {
    let s = d.session.as_ref();
    DeviceDoc {
        name: d.name.to_string(),
        liveness: d.liveness.as_str().to_string(),
        session: s.map(|s| s.id.to_string()),
        addr: addr.map(|a| a.to_string()),
        authenticated: s.map(|s| s.auth == AuthLevel::Authenticated),
        last_hello_ms: s.map(|s| millis(s.last_hello_age)),
        hello_ms: s.map(|s| millis(s.hello)),
        dead_ms: s.map(|s| millis(s.dead)),
        hosted: s.map_or_else(Vec::new, |s| s.hosted.iter().map(|&c| comp(c)).collect()),
        incoming_morphs: d.incoming_morphs,
    }
}

fn computation_doc(
    c: &ComputationStatus,
    device: &dyn Fn(pcxses_core::controller::DeviceId) -> String,
) -> ComputationDoc {
    ComputationDoc {
        name: c.name.to_string(),
        home: c.home.map(device),
        placement: placement_name(c.placement).to_string(),
        host: match c.placement {
            Placement::Running(d) => Some(device(d)),
            _ => None,
        },
        lkgs_version: c.lkgs_version,
        lkgs_bytes: c.lkgs_len,
        failures: c.failures,
        quarantines: c.quarantines,
        recovery: c.recovery.map(|r| RecoveryDoc {
            from: device(r.from),
            since_ms: millis(r.since),
            attempts: r.attempts,
            target: r.target.map(device),
        }),
        retry_in_ms: c.retry_in.map(millis),
    }
}

/// A status of two devices and two computations, for tests: `alpha` alive at
/// 127.0.0.1:4701 hosting both computations, `beta` dead, `counter-beta` moved to alpha
/// and `counter-gamma` recovering from beta with a MORPH to alpha in flight.
#[cfg(test)]
pub(crate) fn sample() -> AcStatus {
    use pcxses_core::controller::{
        ComputationId, ControllerStatus, DeviceId, LiveSession, Liveness, RecoveryStatus,
    };
    use pcxses_core::{LinkId, SessionId};
    let ms = Duration::from_millis;
    let comp = |i: u32, name: &str, home: u32, placement, recovery| ComputationStatus {
        id: ComputationId(i),
        name: name.into(),
        home: Some(DeviceId(home)),
        placement,
        lkgs_version: 7 + i,
        lkgs_len: 8,
        failures: 0,
        quarantines: 0,
        recovery,
        retry_in: None,
    };
    AcStatus {
        controller: ControllerStatus {
            devices: vec![
                DeviceStatus {
                    id: DeviceId(0),
                    name: "alpha".into(),
                    liveness: Liveness::Alive,
                    session: Some(LiveSession {
                        id: SessionId(0x5e1f04a2),
                        link: LinkId(3),
                        auth: AuthLevel::Unauthenticated,
                        hello: ms(100),
                        dead: ms(600),
                        last_hello_age: ms(42),
                        hosted: vec![ComputationId(0), ComputationId(1)],
                    }),
                    incoming_morphs: 1,
                },
                DeviceStatus {
                    id: DeviceId(1),
                    name: "beta".into(),
                    liveness: Liveness::Dead,
                    session: None,
                    incoming_morphs: 0,
                },
            ],
            computations: vec![
                comp(0, "counter-beta", 1, Placement::Running(DeviceId(0)), None),
                comp(
                    1,
                    "counter-gamma",
                    1,
                    Placement::Migrating,
                    Some(RecoveryStatus {
                        from: DeviceId(1),
                        since: ms(250),
                        attempts: 1,
                        target: Some(DeviceId(0)),
                    }),
                ),
            ],
        },
        addrs: vec![Some("127.0.0.1:4701".parse().unwrap()), None],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_document_has_the_documented_shape() {
        let doc = serde_json::to_value(StatusDoc::new(&sample())).unwrap();
        assert_eq!(
            doc["devices"][0],
            json!({"name": "alpha", "liveness": "alive", "session": "5e1f04a2",
                   "addr": "127.0.0.1:4701", "authenticated": false, "last_hello_ms": 42,
                   "hello_ms": 100, "dead_ms": 600,
                   "hosted": ["counter-beta", "counter-gamma"], "incoming_morphs": 1})
        );
        assert_eq!(
            doc["devices"][1],
            json!({"name": "beta", "liveness": "dead", "session": null, "addr": null,
                   "authenticated": null, "last_hello_ms": null, "hello_ms": null,
                   "dead_ms": null, "hosted": [], "incoming_morphs": 0})
        );
        assert_eq!(doc["computations"][0]["placement"], "running");
        assert_eq!(doc["computations"][0]["host"], "alpha");
        assert_eq!(doc["computations"][0]["home"], "beta");
        assert_eq!(doc["computations"][0]["lkgs_version"], 7);
        assert_eq!(doc["computations"][0]["lkgs_bytes"], 8);
        assert_eq!(
            doc["computations"][1]["recovery"],
            json!({"from": "beta", "since_ms": 250, "attempts": 1, "target": "alpha"})
        );
        assert_eq!(doc["computations"][1]["host"], serde_json::Value::Null);
    }

    #[test]
    fn the_document_reads_back_as_it_was_written() {
        let doc = StatusDoc::new(&sample());
        let text = serde_json::to_string(&doc).unwrap();
        assert_eq!(serde_json::from_str::<StatusDoc>(&text).unwrap(), doc);
    }
}
