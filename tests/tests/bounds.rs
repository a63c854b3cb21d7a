//! Every table a peer can make the AC fill is bounded: re-join loops, sessions opened and
//! closed in a loop, and state reassembly, each pushed past its bound.

use std::collections::HashSet;

use pcxses_core::controller::{ComputationId, DeviceId, MigrationFailure, Placement};
use pcxses_core::wire::{
    Bottle, GoodBye, GoodMorning, JoinNonce, StateBottle, StateChunk, StateMode,
};
use pcxses_core::{ControllerEvent, LinkId};
use pcxses_tests::lab::{encode, Lab};

fn good_morning(device: &str, nonce: u64) -> Vec<u8> {
    encode(&Bottle::GoodMorning(GoodMorning {
        device,
        nonce: JoinNonce(nonce.to_le_bytes()),
        mode: StateMode::Separate,
        hello_ms: 100,
        dead_ms: 300,
        max_bottle: 1200,
    }))
}

const DEV1: LinkId = LinkId(2);

#[test]
fn a_target_rejoining_in_a_loop_neither_grows_the_recovery_nor_starves_the_computation() {
    let mut lab = Lab::new(2, |_| {});
    lab.run(100);
    lab.crash(0);
    for _ in 0..1_000 {
        if lab.ac().placement(ComputationId(0)) == Some(Placement::Migrating) {
            break;
        }
        lab.run(1);
    }
    assert_eq!(
        lab.ac().placement(ComputationId(0)),
        Some(Placement::Migrating)
    );
    // The target restarts again and again while the MORPH is in flight: each attempt fails
    // because the target left, which never counts towards quarantine.
    let mut sizes = Vec::new();
    for i in 0..300 {
        lab.boot(1, |_| {});
        lab.run(3);
        if i % 100 == 99 {
            sizes.push(lab.ac().snapshot().len());
            let o = lab.ac().occupancy();
            assert!(o.tried <= 1, "{o:?}");
            assert!(o.timers <= 2 * 2 + 2 * 2 + 130, "{o:?}");
        }
    }
    let left = lab.ac_events_where(|e| {
        matches!(
            e,
            ControllerEvent::MigrationFailed {
                reason: MigrationFailure::TargetLeft,
                ..
            }
        )
    });
    assert!(left.len() >= 250, "{} attempts failed", left.len());
    // Counters may need a byte more; nothing grows per attempt.
    assert!(sizes[2] <= sizes[0] + 8, "the snapshot grows: {sizes:?}");
    // Once the target stays, it gets the computation.
    lab.run(2_000);
    assert_eq!(
        lab.ac().placement(ComputationId(0)),
        Some(Placement::Running(DeviceId(1)))
    );
    assert_eq!(lab.ac().occupancy().tried, 0);
}

#[test]
fn a_device_rejoining_thousands_of_times_never_gets_a_session_id_again() {
    let mut lab = Lab::new(2, |_| {});
    lab.run(100);
    let mut seen = HashSet::new();
    seen.insert(lab.ac().session_of(DeviceId(1)).unwrap());
    let first = lab.ac().snapshot().len();
    for nonce in 1..=6_000u64 {
        lab.inject_to_ac(DEV1, &good_morning("dev1", nonce))
            .unwrap();
        let id = lab.ac().session_of(DeviceId(1)).unwrap();
        assert!(seen.insert(id), "join {nonce} got session {id:?} again");
    }
    assert!(lab.ac().snapshot().len() <= first + 8);
}

#[test]
fn sessions_opened_and_closed_in_a_loop_leave_no_timers_behind() {
    let mut lab = Lab::new(2, |_| {});
    lab.run(100);
    for nonce in 1..=5_000u64 {
        lab.inject_to_ac(DEV1, &good_morning("dev1", nonce))
            .unwrap();
        let session = lab.ac().session_of(DeviceId(1)).unwrap();
        let bye = encode(&Bottle::GoodBye(GoodBye { session }));
        lab.inject_to_ac(DEV1, &bye).unwrap();
    }
    let o = lab.ac().occupancy();
    assert!(o.timers <= 2 * 2 + 64 + 2, "{o:?}");
}

#[test]
fn state_reassembly_holds_one_version_per_hosted_computation() {
    let mut lab = Lab::new(2, |_| {});
    lab.run(100);
    let session = lab.ac().session_of(DeviceId(0)).unwrap();
    // Many versions of a state in many chunks, none complete, and chunks for handles the
    // session does not host.
    for version in 1..=2_000u32 {
        for handle in [0u16, 1, 7] {
            let chunk = StateChunk {
                handle,
                version,
                total_len: 60_000,
                index: version % 50,
                data: &[1; 1_168][..],
            };
            let _ = lab.inject_to_ac(
                LinkId(1),
                &encode(&Bottle::State(StateBottle { session, chunk })),
            );
        }
    }
    let o = lab.ac().occupancy();
    assert_eq!(o.reassemblies, 1, "{o:?} {:?}", lab.ac().stats());
}
