//! Any snapshot and change records, as a journal damaged beneath checksums that still hold
//! would hand them over: restoring them is an error or a controller, never a panic, and a
//! restored controller restores from its own snapshot.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use pcxses_core::controller::{ComputationSpec, DeviceSpec, SnapshotError};
use pcxses_core::psk::Psk;
use pcxses_core::{Controller, ControllerConfig, Instant, MemoryRepository};

/// Three devices, each running its own computation; the last one keyed.
fn config() -> ControllerConfig {
    let devices = (0..3).map(|i| {
        let mut spec = DeviceSpec::new(&format!("dev{i}"), &[&format!("comp{i}")]);
        spec.psk = (i == 2).then_some(Psk([0xa5; 32]));
        spec
    });
    let comps = (0..3).map(|i| ComputationSpec::new(&format!("comp{i}"), "code"));
    ControllerConfig::new(1, devices.collect(), comps.collect())
}

fn restored(snapshot: &[u8], changes: &[&[u8]]) -> Result<Controller, SnapshotError> {
    let mut repo = MemoryRepository::default();
    repo.insert("code", vec![1; 40]);
    let now = Instant::from_millis(10_000);
    Controller::new(config(), repo, now)?.restore(snapshot, changes.iter().copied(), now)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let (Ok(snapshot), Ok(changes)) = (u.arbitrary::<&[u8]>(), u.arbitrary::<Vec<&[u8]>>()) else {
        return;
    };
    if let Ok(ac) = restored(snapshot, &changes) {
        if let Err(e) = restored(&ac.snapshot(), &[]) {
            panic!("a restored AC does not restore from its own snapshot: {e}");
        }
    }
});
