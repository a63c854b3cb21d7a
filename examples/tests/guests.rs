//! The shipped computations, built for `wasm32-unknown-unknown` and run in the device-side
//! host exactly as a target runs them after a MORPH.

mod common;

use pcxses_examples::guest::{Guest, GuestLimits};

#[test]
fn pacman_resumes_on_another_instance_from_its_captured_state() {
    let wasm = common::build_guest("pcxses-guest-pacman");
    assert!(wasm.len() < 200_000, "module of {} bytes", wasm.len());
    let mut a = Guest::load(&wasm, GuestLimits::default()).unwrap();
    for _ in 0..600 {
        a.step().unwrap();
    }
    let state = a.capture().unwrap();
    assert!(state.len() <= 200, "state of {} bytes", state.len());
    let frame = a.render().unwrap();
    assert!(frame.contains('C') && frame.contains("score"), "{frame}");

    // A second instance — another device — restores the state and plays on identically.
    let mut b = Guest::load(&wasm, GuestLimits::default()).unwrap();
    b.restore(&state).unwrap();
    assert_eq!(b.render().unwrap(), frame);
    for _ in 0..300 {
        a.step().unwrap();
        b.step().unwrap();
    }
    assert_eq!(a.capture().unwrap(), b.capture().unwrap());
    // A state that is not PacMan's is refused, and the game goes on as it was.
    assert!(b.restore(&[0; 10]).is_err());
    assert_eq!(a.capture().unwrap(), b.capture().unwrap());
}
