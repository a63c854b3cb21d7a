//! The shipped computations, built for `wasm32-unknown-unknown` and run in the device-side
//! host exactly as a target runs them after a MORPH.

use pcxses_demo::artifacts;
use pcxses_device::guest::{Guest, GuestLimits};
use pcxses_guest_sui::Computation;

/// Builds a guest crate for wasm32 and returns the module.
fn build_guest(package: &str) -> Vec<u8> {
    let paths = artifacts::guests(&[package]).expect("the guest builds");
    std::fs::read(&paths[0]).expect("the module")
}

#[test]
fn pacman_resumes_on_another_instance_from_its_captured_state() {
    let wasm = build_guest("pcxses-guest-pacman");
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

#[test]
fn chat_records_its_input_and_resumes_elsewhere_with_the_same_lines() {
    let wasm = build_guest("pcxses-guest-chat");
    let mut a = Guest::load(&wasm, GuestLimits::default()).unwrap();
    assert!(a.takes_input());
    for i in 0..20 {
        a.step().unwrap();
        a.input(format!("operator: message {i}\n").as_bytes())
            .unwrap();
    }
    let state = a.capture().unwrap();
    let chat = pcxses_guest_chat::Chat::decode(&state).expect("a chat state");
    assert_eq!(chat.received(), 20);
    assert_eq!(chat.lines().last(), Some("operator: message 19"));
    // A line over the host's limit never reaches the guest.
    assert!(a.input(&[b'x'; 5000]).is_err());
    assert_eq!(a.capture().unwrap(), state);

    let mut b = Guest::load(&wasm, GuestLimits::default()).unwrap();
    b.restore(&state).unwrap();
    assert_eq!(b.render().unwrap(), a.render().unwrap());
    a.input(b"one more").unwrap();
    b.input(b"one more").unwrap();
    assert_eq!(a.capture().unwrap(), b.capture().unwrap());
    assert!(b.render().unwrap().contains("#21   one more"));
    // PacMan takes no input.
    let pacman = build_guest("pcxses-guest-pacman");
    assert!(!Guest::load(&pacman, GuestLimits::default())
        .unwrap()
        .takes_input());
}
