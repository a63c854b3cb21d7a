//! Authentication levels: a computation never moves from an authenticated device (a
//! pre-shared key, a transport identity) to a less authenticated one unless the
//! configuration allows it, and an AC that requires authentication refuses every
//! unauthenticated join.

use pcxses_core::controller::{ComputationId, DeviceId, OrphanReason, Placement};
use pcxses_core::policy::AuthLevel;
use pcxses_core::psk::Psk;
use pcxses_core::wire::{Bottle, GoodMorning, JoinNonce, StateMode};
use pcxses_core::{ControllerConfig, ControllerEvent, InputError, LinkId, MAX_BOTTLE_LEN};
use pcxses_tests::lab::Lab;

fn key(i: usize) -> Psk {
    Psk([i as u8 + 1; 32])
}

fn link(i: usize) -> LinkId {
    LinkId(i as u64 + 1)
}

fn placement(lab: &Lab, c: u32) -> Option<Placement> {
    lab.ac().placement(ComputationId(c))
}

/// Three devices: dev0 and dev2 keyed, dev1 not; comp0 prefers dev1, then dev2.
fn mixed(tweak: impl FnOnce(&mut ControllerConfig)) -> Lab {
    let mut lab = Lab::new(3, |c| {
        c.devices[0].psk = Some(key(0));
        c.devices[2].psk = Some(key(2));
        c.computations[0].hosts = vec!["dev1".into(), "dev2".into()];
        tweak(c);
    });
    lab.boot(0, |d| d.psk = Some(key(0)));
    lab.boot(2, |d| d.psk = Some(key(2)));
    lab.run(300);
    lab
}

/// Whether the AC sent device `i` any part of a computation.
fn shipped_to(lab: &Lab, i: usize) -> bool {
    lab.wire
        .iter()
        .any(|p| p.to == link(i) && matches!(p.kind(), "morph" | "object_chunk"))
}

#[test]
fn a_keyed_devices_computation_never_moves_to_an_unkeyed_device() {
    let mut lab = mixed(|_| {});
    let ac = lab.ac();
    assert_eq!(
        ac.session_auth(DeviceId(1)),
        Some(AuthLevel::Unauthenticated)
    );
    assert_eq!(ac.session_auth(DeviceId(2)), Some(AuthLevel::Authenticated));
    lab.crash(0);
    lab.run(1_000);
    assert_eq!(placement(&lab, 0), Some(Placement::Running(DeviceId(2))));
    assert!(
        !shipped_to(&lab, 1),
        "the unkeyed device got the computation"
    );
}

#[test]
fn with_no_authenticated_target_a_keyed_devices_computation_is_orphaned() {
    let mut lab = mixed(|_| {});
    lab.crash(2);
    lab.run(1_000);
    lab.crash(0);
    lab.run(1_000);
    assert_eq!(placement(&lab, 0), Some(Placement::Orphaned));
    let orphaned = lab.ac_events_where(|e| {
        matches!(e, ControllerEvent::Orphaned { computation, reason: OrphanReason::NoAuthenticatedDevice, .. } if computation.0 == 0)
    });
    assert_eq!(orphaned.len(), 1, "{:?}", lab.ac_events);
    assert!(!shipped_to(&lab, 1), "the unkeyed device got a computation");
    // A keyed device that comes back takes it.
    lab.boot(2, |d| d.psk = Some(key(2)));
    lab.run(1_000);
    assert_eq!(placement(&lab, 0), Some(Placement::Running(DeviceId(2))));
}

#[test]
fn the_configuration_may_allow_moving_to_a_less_authenticated_device() {
    let mut lab = mixed(|c| c.allow_auth_downgrade = true);
    lab.crash(0);
    lab.run(1_000);
    assert_eq!(placement(&lab, 0), Some(Placement::Running(DeviceId(1))));
}

#[test]
fn a_certified_devices_computation_moves_only_to_a_certified_device() {
    let mut lab = Lab::new(3, |c| {
        c.computations[0].hosts = vec!["dev1".into(), "dev2".into()];
    });
    lab.identities[0] = Some("dev0".into());
    lab.identities[2] = Some("dev2".into());
    lab.run(300);
    assert_eq!(
        lab.ac().session_auth(DeviceId(0)),
        Some(AuthLevel::Authenticated)
    );
    lab.crash(0);
    lab.run(1_000);
    assert_eq!(placement(&lab, 0), Some(Placement::Running(DeviceId(2))));
    assert!(
        !shipped_to(&lab, 1),
        "the uncertified device got the computation"
    );
}

fn good_morning(device: &str, nonce: u8) -> Vec<u8> {
    let mut out = Vec::new();
    Bottle::GoodMorning(GoodMorning {
        device,
        nonce: JoinNonce([nonce; 8]),
        mode: StateMode::Separate,
        hello_ms: 100,
        dead_ms: 300,
        max_bottle: 1200,
    })
    .encode_to_vec(&mut out, MAX_BOTTLE_LEN)
    .unwrap();
    out
}

#[test]
fn an_ac_that_requires_authentication_refuses_every_unauthenticated_join() {
    let mut lab = Lab::new(3, |c| {
        c.require_auth = true;
        c.devices[0].psk = Some(key(0));
    });
    lab.boot(0, |d| d.psk = Some(key(0)));
    lab.identities[2] = Some("dev2".into());
    lab.run(500);
    let ac = lab.ac();
    assert!(
        ac.session_of(DeviceId(0)).is_some(),
        "the keyed device joins"
    );
    assert!(
        ac.session_of(DeviceId(2)).is_some(),
        "the certified one too"
    );
    assert_eq!(ac.session_of(DeviceId(1)), None);
    assert!(ac.stats().unauthenticated > 0);
    assert!(lab
        .ac_events_where(
            |e| matches!(e, ControllerEvent::DeviceJoined { device, .. } if device.0 == 1)
        )
        .is_empty());
    // One more plain GOOD_MORNING, of a known name and of an unknown one: refused alike,
    // counted, and nothing else changes.
    for name in ["dev1", "nobody"] {
        let before = lab.ac().snapshot();
        let stats = *lab.ac().stats();
        let since = lab.wire.len();
        let r = lab.inject_to_ac(LinkId(50), &good_morning(name, 9));
        assert_eq!(r, Err(InputError::Unauthenticated), "{name}");
        assert_eq!(lab.ac().snapshot(), before);
        let after = *lab.ac().stats();
        assert_eq!(after.unauthenticated, stats.unauthenticated + 1);
        assert_eq!(after.rejected(), stats.rejected() + 1);
        let answers: Vec<_> = lab.answers_to(LinkId(50), since);
        assert!(answers.iter().all(|p| p.kind() == "reject"), "{name}");
    }
}
