//! Snapshots and change records decoded for reading: what a journal holds, for tools that
//! show it. Keys never appear: a device's view says only whether it holds session keys.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::{decode, Change, Snap, SnapComp, SnapDevice, SnapPlace, SnapshotError};
use crate::wire::bottle::StateMode;

/// A [`super::super::Controller::snapshot`], decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotView {
    /// The id the next MORPH gets.
    pub next_morph: u32,
    /// Every device, in registry order.
    pub devices: Vec<DeviceView>,
    /// Every computation, in registry order.
    pub computations: Vec<ComputationView>,
}

/// One change record a [`super::super::Journal`] was handed, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeView {
    /// A device's persisted part, whole.
    Device(DeviceView),
    /// A computation's persisted part, whole.
    Computation(ComputationView),
    /// The id the next MORPH gets.
    Morphs(u32),
}

/// A device as persisted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceView {
    /// Its name.
    pub name: String,
    /// How many sessions it has had.
    pub generation: u32,
    /// Its live session, if any.
    pub session: Option<SessionView>,
    /// Its last ended session's id.
    pub retired_session: u32,
    /// Whether the record holds its pre-shared-key session keys (never shown).
    pub keyed: bool,
}

/// A device's live session as persisted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionView {
    /// The session id.
    pub id: u32,
    /// The transport's link id of the device.
    pub link: u64,
    /// How state travels.
    pub mode: StateMode,
    /// The HELLO interval, ms.
    pub hello_ms: u32,
    /// The dead interval, ms.
    pub dead_ms: u32,
    /// The fence interval, ms.
    pub fence_ms: u32,
    /// The chunk size, bytes.
    pub chunk: u16,
    /// The largest bottle, bytes.
    pub max_bottle: u16,
    /// The computations it hosts: handle and name.
    pub hosted: Vec<(u16, String)>,
}

/// A computation as persisted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ComputationView {
    /// Its name.
    pub name: String,
    /// Its last known good state.
    pub lkgs: Vec<u8>,
    /// The LKGS's version.
    pub lkgs_version: u32,
    /// The session the LKGS came from.
    pub lkgs_from: u32,
    /// Its last manifest sequence number.
    pub sequence: u64,
    /// Consecutive failed targets.
    pub failures: u32,
    /// Where it is.
    pub placement: PlacementView,
}

/// Where a computation is, as persisted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlacementView {
    /// Nowhere yet.
    Unplaced,
    /// Running on a device.
    Running {
        /// The device.
        device: String,
        /// Its handle there.
        handle: u16,
        /// The MORPH that put it there (0: its home).
        morph: u32,
        /// Not yet proven by a state from its new host.
        unproven: bool,
    },
    /// Moving after its host failed.
    Recovering {
        /// The failed device.
        from: String,
        /// Its session that failed.
        from_session: u32,
        /// Sessions tried as targets.
        tried: Vec<u32>,
        /// The MORPH in flight, if any: id and target device.
        in_flight: Option<(u32, String)>,
    },
    /// Quarantined.
    Quarantined,
    /// Stopped by the operator.
    Stopped,
}

impl SnapshotView {
    /// Decodes a snapshot.
    pub fn decode(bytes: &[u8]) -> Result<SnapshotView, SnapshotError> {
        let snap: Snap = decode(bytes)?;
        Ok(SnapshotView {
            next_morph: snap.next_morph,
            devices: snap.devices.0.iter().map(DeviceView::from_snap).collect(),
            computations: snap
                .comps
                .0
                .iter()
                .map(ComputationView::from_snap)
                .collect(),
        })
    }

    /// Applies a change: it replaces the part of the same name, as a restore does, or adds
    /// it at the end.
    pub fn apply(&mut self, change: ChangeView) {
        match change {
            ChangeView::Device(d) => match self.devices.iter_mut().find(|x| x.name == d.name) {
                Some(x) => *x = d,
                None => self.devices.push(d),
            },
            ChangeView::Computation(c) => {
                match self.computations.iter_mut().find(|x| x.name == c.name) {
                    Some(x) => *x = c,
                    None => self.computations.push(c),
                }
            }
            ChangeView::Morphs(next) => self.next_morph = next,
        }
    }
}

impl ChangeView {
    /// Decodes a change record.
    pub fn decode(bytes: &[u8]) -> Result<ChangeView, SnapshotError> {
        Ok(match decode(bytes)? {
            Change::Device(d) => ChangeView::Device(DeviceView::from_snap(&d)),
            Change::Comp(c) => ChangeView::Computation(ComputationView::from_snap(&c)),
            Change::Morphs(next) => ChangeView::Morphs(next),
        })
    }
}

impl DeviceView {
    fn from_snap(d: &SnapDevice<'_>) -> DeviceView {
        DeviceView {
            name: d.name.to_string(),
            generation: d.generation,
            session: d.session.as_ref().map(|s| SessionView {
                id: s.id,
                link: s.link,
                mode: s.mode,
                hello_ms: s.hello_ms,
                dead_ms: s.dead_ms,
                fence_ms: s.fence_ms,
                chunk: s.chunk,
                max_bottle: s.max_bottle,
                hosted: s.hosted.iter().map(|&(h, n)| (h, n.to_string())).collect(),
            }),
            retired_session: d.retired,
            keyed: d.auth.is_some(),
        }
    }
}

impl ComputationView {
    fn from_snap(c: &SnapComp<'_>) -> ComputationView {
        ComputationView {
            name: c.name.to_string(),
            lkgs: c.lkgs.to_vec(),
            lkgs_version: c.lkgs_version,
            lkgs_from: c.lkgs_from,
            sequence: c.sequence,
            failures: c.failures,
            placement: match &c.place {
                SnapPlace::Unplaced => PlacementView::Unplaced,
                SnapPlace::Running {
                    device,
                    handle,
                    morph,
                    unproven,
                } => PlacementView::Running {
                    device: device.to_string(),
                    handle: *handle,
                    morph: *morph,
                    unproven: *unproven,
                },
                SnapPlace::Recovering {
                    from,
                    from_session,
                    tried,
                    in_flight,
                } => PlacementView::Recovering {
                    from: from.to_string(),
                    from_session: *from_session,
                    tried: tried.clone(),
                    in_flight: in_flight.as_ref().map(|a| (a.morph, a.target.to_string())),
                },
                SnapPlace::Quarantined => PlacementView::Quarantined,
                SnapPlace::Stopped => PlacementView::Stopped,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::{ComputationSpec, DeviceSpec};
    use crate::{Controller, ControllerConfig, Instant, MemoryRepository};

    #[test]
    fn a_snapshot_and_its_changes_read_back() {
        let config = ControllerConfig::new(
            1,
            alloc::vec![DeviceSpec::new("dev0", &["comp0"])],
            alloc::vec![ComputationSpec::new("comp0", "c0")],
        );
        let ac =
            Controller::new(config, MemoryRepository::default(), Instant::from_millis(0)).unwrap();
        let mut view = SnapshotView::decode(&ac.snapshot()).unwrap();
        assert_eq!(view.devices[0].name, "dev0");
        assert_eq!(view.devices[0].session, None);
        assert_eq!(view.computations[0].name, "comp0");
        assert_eq!(view.computations[0].placement, PlacementView::Unplaced);
        let mut record = Vec::new();
        ac.change(super::super::Part::Morphs, &mut record);
        let change = ChangeView::decode(&record).unwrap();
        assert_eq!(change, ChangeView::Morphs(view.next_morph));
        view.apply(ChangeView::Morphs(9));
        assert_eq!(view.next_morph, 9);
        assert_eq!(SnapshotView::decode(&record), Err(SnapshotError::Format));
        assert_eq!(ChangeView::decode(b"\x04"), Err(SnapshotError::Format));
    }
}
