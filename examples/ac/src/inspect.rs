//! A journal read for people, without changing it: a summary of what the AC would restore
//! (`pcxses-ac journal check`) and every record as one JSON object a line
//! (`pcxses-ac journal dump`).

use std::fmt;
use std::path::{Path, PathBuf};

use pcxses_core::controller::{
    ChangeView, ComputationView, DeviceView, PlacementView, SnapshotError, SnapshotView,
};
use pcxses_core::wire::StateMode;
use serde_json::{json, Value};

use crate::journal::{self, JournalError, Record, RecordKind, Scan, TornTail};

/// Why a journal could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The file is missing, unreadable or damaged.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// There is no journal at this path.
    #[error("{0}: no such journal")]
    Missing(PathBuf),
    /// A whole record holds what the controller cannot decode.
    #[error("{0}: unreadable record at byte {1}: {2}")]
    Record(PathBuf, u64, SnapshotError),
}

/// What a journal holds, as `pcxses-ac journal check` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Whole records in the file, superseded ones included.
    pub records: usize,
    /// Byte offset of the snapshot the AC would restore.
    pub snapshot_offset: u64,
    /// Its size, bytes.
    pub snapshot_len: usize,
    /// Change records after it.
    pub changes: usize,
    /// Devices, after the changes.
    pub devices: usize,
    /// Devices with a live session.
    pub sessions: usize,
    /// Computations.
    pub computations: usize,
    /// Computations with a non-empty LKGS.
    pub with_lkgs: usize,
    /// Bytes of every LKGS together.
    pub lkgs_bytes: u64,
    /// The record cut short at the end, which opening the journal drops.
    pub torn: Option<TornTail>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "records: {}", self.records)?;
        writeln!(
            f,
            "snapshot: {} bytes at byte {}, then {} changes",
            self.snapshot_len, self.snapshot_offset, self.changes
        )?;
        writeln!(
            f,
            "devices: {} ({} with a session)",
            self.devices, self.sessions
        )?;
        writeln!(
            f,
            "computations: {} ({} with an LKGS, {} LKGS bytes in all)",
            self.computations, self.with_lkgs, self.lkgs_bytes
        )?;
        match self.torn {
            None => write!(f, "torn tail: none"),
            Some(t) => write!(
                f,
                "torn tail: {} bytes at byte {}, never committed: the AC drops them at start",
                t.len, t.offset
            ),
        }
    }
}

/// Reads the journal at `path` without changing it.
fn read(path: &Path) -> Result<Scan, InspectError> {
    journal::scan(path)?.ok_or_else(|| InspectError::Missing(path.into()))
}

/// The summary of the journal at `path`: the state the AC would restore from it.
pub fn check(path: &Path) -> Result<Summary, InspectError> {
    let scan = read(path)?;
    let bad = |r: &Record| {
        let offset = r.offset;
        move |e| InspectError::Record(path.into(), offset, e)
    };
    let mut state = None;
    let mut summary = Summary {
        records: scan.records.len(),
        snapshot_offset: 0,
        snapshot_len: 0,
        changes: 0,
        devices: 0,
        sessions: 0,
        computations: 0,
        with_lkgs: 0,
        lkgs_bytes: 0,
        torn: scan.outline.torn,
    };
    for r in &scan.records {
        match r.kind {
            RecordKind::Snapshot => {
                state = Some(SnapshotView::decode(&r.payload).map_err(bad(r))?);
                summary.snapshot_offset = r.offset;
                summary.snapshot_len = r.payload.len();
                summary.changes = 0;
            }
            RecordKind::Change => {
                let change = ChangeView::decode(&r.payload).map_err(bad(r))?;
                if let Some(s) = state.as_mut() {
                    s.apply(change);
                }
                summary.changes += 1;
            }
        }
    }
    if let Some(s) = state {
        summary.devices = s.devices.len();
        summary.sessions = s.devices.iter().filter(|d| d.session.is_some()).count();
        summary.computations = s.computations.len();
        summary.with_lkgs = s.computations.iter().filter(|c| !c.lkgs.is_empty()).count();
        summary.lkgs_bytes = s.computations.iter().map(|c| c.lkgs.len() as u64).sum();
    }
    Ok(summary)
}

/// Every record of the journal at `path`, in order, as one JSON object each: its byte
/// offset, its kind and its fields; a record cut short at the end comes last as
/// `"record": "torn"`.
pub fn dump(path: &Path) -> Result<Vec<Value>, InspectError> {
    let scan = read(path)?;
    let mut lines = Vec::with_capacity(scan.records.len() + 1);
    for r in &scan.records {
        let bad = |e| InspectError::Record(path.into(), r.offset, e);
        let mut line = match r.kind {
            RecordKind::Snapshot => snapshot_json(&SnapshotView::decode(&r.payload).map_err(bad)?),
            RecordKind::Change => change_json(ChangeView::decode(&r.payload).map_err(bad)?),
        };
        line["offset"] = json!(r.offset);
        lines.push(line);
    }
    if let Some(t) = scan.outline.torn {
        lines.push(json!({"offset": t.offset, "record": "torn", "bytes": t.len}));
    }
    Ok(lines)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn snapshot_json(s: &SnapshotView) -> Value {
    json!({
        "record": "snapshot",
        "next_morph": s.next_morph,
        "devices": s.devices.iter().map(device_json).collect::<Vec<_>>(),
        "computations": s.computations.iter().map(computation_json).collect::<Vec<_>>(),
    })
}

fn change_json(c: ChangeView) -> Value {
    let (kind, mut value) = match c {
        ChangeView::Device(d) => ("device", device_json(&d)),
        ChangeView::Computation(c) => ("computation", computation_json(&c)),
        ChangeView::Morphs(next) => ("morphs", json!({ "next_morph": next })),
        _ => ("unknown", json!({})),
    };
    value["record"] = json!(kind);
    value
}

fn device_json(d: &DeviceView) -> Value {
    let session = d.session.as_ref().map(|s| {
        json!({
            "id": s.id,
            "link": s.link,
            "mode": match s.mode {
                StateMode::InHello => "joined",
                StateMode::Separate => "split",
            },
            "hello_ms": s.hello_ms,
            "dead_ms": s.dead_ms,
            "fence_ms": s.fence_ms,
            "chunk": s.chunk,
            "max_bottle": s.max_bottle,
            "hosted": s.hosted.iter().map(|(h, c)| json!({"handle": h, "computation": c}))
                .collect::<Vec<_>>(),
        })
    });
    json!({
        "name": d.name,
        "generation": d.generation,
        "session": session,
        "retired_session": d.retired_session,
        "keyed": d.keyed,
    })
}

fn computation_json(c: &ComputationView) -> Value {
    let placement = match &c.placement {
        PlacementView::Unplaced => json!({"state": "unplaced"}),
        PlacementView::Running {
            device,
            handle,
            morph,
            unproven,
        } => json!({
            "state": "running", "device": device, "handle": handle, "morph": morph,
            "unproven": unproven,
        }),
        PlacementView::Recovering {
            from,
            from_session,
            tried,
            in_flight,
        } => json!({
            "state": "recovering", "from": from, "from_session": from_session, "tried": tried,
            "in_flight": in_flight.as_ref().map(|(m, t)| json!({"morph": m, "target": t})),
        }),
        PlacementView::Quarantined => json!({"state": "quarantined"}),
        PlacementView::Stopped => json!({"state": "stopped"}),
        _ => json!({"state": "unknown"}),
    };
    json!({
        "name": c.name,
        "lkgs_version": c.lkgs_version,
        "lkgs_len": c.lkgs.len(),
        "lkgs": hex(&c.lkgs),
        "lkgs_from": c.lkgs_from,
        "sequence": c.sequence,
        "failures": c.failures,
        "placement": placement,
    })
}
