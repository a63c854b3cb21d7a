//! A device's MORPH anti-rollback state (MORPH ids, manifest sequences) moves only for
//! MORPHs that passed every check: forged MORPH and MORPH_FAIL bottles (another session, a
//! bad signature) leave it as it was, and a new session, such as one with an AC that
//! restarted without its state and numbers MORPHs and sequences from 1 again, starts it
//! afresh.

use pcxses_core::controller::{ComputationId, DeviceId, Placement};
use pcxses_core::signing::{CodeSigner, CodeVerifier};
use pcxses_core::wire::{Bottle, Morph, MorphFail, MorphFailReason, Signature};
use pcxses_core::{Controller, ControllerEvent, InputError, SessionId};
use pcxses_tests::lab::Lab;

fn encode(bottle: &Bottle<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    bottle.encode_to_vec(&mut out, 4096).expect("encodable");
    out
}

/// The devices a computation was moved to, in order.
fn completed_to(lab: &Lab, comp: u32) -> Vec<DeviceId> {
    lab.ac_events_where(|e| {
        matches!(e, ControllerEvent::MigrationCompleted { computation, .. } if computation.0 == comp)
    })
    .into_iter()
    .filter_map(|(_, e)| match e {
        ControllerEvent::MigrationCompleted { to, .. } => Some(to),
        _ => None,
    })
    .collect()
}

fn signer() -> CodeSigner {
    CodeSigner::from_secret([0x5a; 32])
}

#[test]
fn a_forged_morph_fail_for_another_session_does_not_disable_morph() {
    let mut lab = Lab::new(2, |_| {});
    lab.run(500);
    let session = lab.device(1).session().expect("dev1 joined");
    let other = SessionId(session.0 ^ 0x5a5a_5a5a);
    let cancel = encode(&Bottle::MorphFail(MorphFail {
        session: other,
        morph: u32::MAX,
        reason: MorphFailReason::TimedOut,
    }));
    let morph = encode(&Bottle::Morph(Morph {
        session: other,
        morph: u32::MAX,
        handle: 7,
        manifest: b"not a manifest",
        signature: None,
    }));
    assert_eq!(
        lab.inject_to_device(1, &cancel),
        Err(InputError::UnknownSession)
    );
    assert_eq!(
        lab.inject_to_device(1, &morph),
        Err(InputError::UnknownSession)
    );
    lab.crash(0);
    lab.run(1_500);
    assert_eq!(completed_to(&lab, 0), [DeviceId(1)]);
    assert_eq!(
        lab.ac().placement(ComputationId(0)),
        Some(Placement::Running(DeviceId(1)))
    );
}

#[test]
fn a_morph_with_a_bad_signature_changes_nothing_on_its_target() {
    let mut lab = Lab::new(2, |_| {});
    let ac = lab.ac.take().expect("AC").with_code_signer(signer());
    lab.ac = Some(ac);
    lab.boot(1, |d| {
        d.code_key = CodeVerifier::from_public(signer().public_key())
    });
    lab.run(500);
    let session = lab.device(1).session().expect("dev1 joined");
    // The id the AC gives its next MORPH, and the highest there is, each in the target's
    // own session but signed by nobody.
    for id in [1, u32::MAX] {
        let forged = encode(&Bottle::Morph(Morph {
            session,
            morph: id,
            handle: 7,
            manifest: b"not a manifest",
            signature: Some(Signature([0x33; 64])),
        }));
        assert_eq!(lab.inject_to_device(1, &forged), Ok(()));
    }
    let refused = lab.device_events_where(1, |e| {
        matches!(
            e,
            pcxses_core::DeviceEvent::MorphRefused {
                reason: MorphFailReason::BadSignature,
                ..
            }
        )
    });
    assert_eq!(refused.len(), 2);
    lab.crash(0);
    lab.run(1_500);
    assert_eq!(completed_to(&lab, 0), [DeviceId(1)]);
    assert!(lab
        .ac_events_where(|e| matches!(e, ControllerEvent::MigrationFailed { .. }))
        .is_empty());
}

#[test]
fn a_device_serves_the_morphs_of_an_ac_that_restarted_without_its_state() {
    // comp0 may only move to dev1.
    let mut lab = Lab::new(3, |c| c.computations[0].hosts = vec!["dev1".into()]);
    lab.run(500);
    // The first AC moves comp0 to dev1: MORPH 1, manifest sequence 1.
    lab.crash(0);
    lab.run(1_500);
    assert_eq!(completed_to(&lab, 0), [DeviceId(1)]);
    // A new AC, knowing nothing: the devices join it anew, and it numbers MORPHs and
    // manifest sequences from 1 again.
    let fresh = Controller::new(lab.ac_config.clone(), lab.repo.clone(), lab.now).expect("AC");
    lab.ac = Some(fresh);
    lab.ac_events.clear();
    lab.boot(0, |_| {});
    lab.run(2_000);
    assert_eq!(
        lab.ac().placement(ComputationId(0)),
        Some(Placement::Running(DeviceId(0)))
    );
    lab.crash(0);
    lab.run(2_000);
    assert_eq!(completed_to(&lab, 0), [DeviceId(1)]);
    assert!(lab
        .ac_events_where(|e| matches!(e, ControllerEvent::MigrationFailed { .. }))
        .is_empty());
}
