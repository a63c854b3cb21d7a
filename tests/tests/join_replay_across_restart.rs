//! Nothing a keyed device sent before an AC restart opens a session after it: the AC keys
//! its challenges with entropy its caller draws afresh at every start and never stores,
//! so a recorded sealed GOOD_MORNING is refused by a restarted or restored AC, even one
//! with the same configuration and seed.

mod keyed;

use keyed::{joins, keyed, link};
use pcxses_core::wire::Bottle;
use pcxses_core::{Controller, ControllerEvent, InputError};
use pcxses_tests::lab::Lab;

/// The sealed GOOD_MORNING with which dev0 joined.
fn recorded_join(lab: &Lab) -> Vec<u8> {
    lab.sent("good_morning")
        .into_iter()
        .rev()
        .find(|p| p.from == link(0) && !p.is_plain())
        .expect("a sealed GOOD_MORNING of dev0")
        .bytes
}

/// Replays `join` to the AC and checks it opens nothing and is answered with a fresh
/// challenge.
fn assert_refused(lab: &mut Lab, join: &[u8]) {
    let joined = lab.ac_events.len();
    let sent = lab.wire.len();
    assert_eq!(
        lab.inject_to_ac(link(0), join),
        Err(InputError::Unauthenticated)
    );
    assert!(!lab.ac_events[joined..]
        .iter()
        .any(|(_, e)| matches!(e, ControllerEvent::DeviceJoined { .. })));
    let answers: Vec<&str> = lab.wire[sent..].iter().map(|p| p.kind()).collect();
    assert_eq!(answers, ["challenge"]);
}

#[test]
fn a_join_recorded_before_an_ac_restart_is_refused_after_it() {
    let mut lab = keyed(1);
    let ac = lab.ac.take().expect("AC").with_entropy([1; 32]);
    lab.ac = Some(ac);
    lab.run(500);
    assert_eq!(joins(&lab, 0), 1);
    let join = recorded_join(&lab);
    // The AC restarts without a journal, well within a challenge's lifetime, with the same
    // configuration and seed, and entropy of its own.
    lab.crash(0);
    let ac = Controller::new(lab.ac_config.clone(), lab.repo.clone(), lab.now)
        .expect("AC")
        .with_entropy([2; 32]);
    lab.ac = Some(ac);
    assert_refused(&mut lab, &join);
    assert_eq!(
        lab.ac().session_of(pcxses_core::controller::DeviceId(0)),
        None
    );
}

#[test]
fn a_join_recorded_before_an_ac_restart_is_refused_by_the_restored_ac() {
    let mut lab = keyed(1);
    let ac = lab.ac.take().expect("AC").with_entropy([1; 32]);
    lab.ac = Some(ac);
    let stored = lab.journal_ac();
    lab.run(500);
    let join = recorded_join(&lab);
    let session = lab.device(0).session().expect("joined");
    let s = stored.lock().unwrap().clone();
    lab.restore_ac(&s.snapshot, s.changes.iter().map(Vec::as_slice));
    let ac = lab.ac.take().expect("AC").with_entropy([2; 32]);
    lab.ac = Some(ac);
    assert_refused(&mut lab, &join);
    // The device keeps its session with the restored AC.
    lab.run(1_000);
    assert_eq!(lab.device(0).session(), Some(session));
    assert_eq!(joins(&lab, 0), 1);
    let acks = lab
        .wire
        .iter()
        .filter(|p| matches!(p.bottle(), Some(Bottle::GoodMorningAck(_))))
        .count();
    assert_eq!(acks, 1);
}
