//! A device that reaches its AC over a new link (another connection, another AC of its
//! area): while the AC has not moved its unauthenticated session there it sends nothing but
//! its GOOD_MORNING, it judges the AC silent as `Device::ac_silent` says, and an AC that no
//! longer knows the session ends it rather than leaving the device waiting.

use std::time::Duration;

use pcxses_core::controller::{ComputationSpec, DeviceSpec};
use pcxses_core::device::StopReason;
use pcxses_core::wire::Bottle;
use pcxses_core::{
    Controller, ControllerConfig, Device, DeviceConfig, DeviceEvent, Instant, Limits, LinkId,
    MemoryRepository, Output,
};

const HELLO_MS: u64 = 100;

/// An AC whose session ids follow from `seed`.
fn ac(seed: u64) -> Controller {
    let mut repo = MemoryRepository::default();
    repo.insert("c0", vec![0; 10]);
    let config = ControllerConfig::new(
        seed,
        vec![DeviceSpec::new("dev0", &["comp0"])],
        vec![ComputationSpec::new("comp0", "c0")],
    );
    Controller::new(config, repo, Instant::from_millis(0)).unwrap()
}

/// A device of HELLO 100 ms and dead interval 2 s (fence lease 1.5 s).
fn device() -> Device {
    let mut config = DeviceConfig::new("dev0", 3);
    config.hello = Duration::from_millis(HELLO_MS);
    config.dead = Duration::from_secs(2);
    Device::new(config, Instant::from_millis(0))
}

/// What `dev` sends at `now`, its timers run first, as bottles' bytes; and its events.
fn sent(dev: &mut Device, now: Instant) -> (Vec<Vec<u8>>, Vec<DeviceEvent>) {
    dev.handle_timeout(now);
    let (mut out, mut events) = (Vec::new(), Vec::new());
    loop {
        match dev.poll_output() {
            Output::Transmit(t) => out.push(t.bytes.to_vec()),
            Output::Event(e) => events.push(e),
            Output::Timeout(_) => return (out, events),
        }
    }
}

/// The kind of each bottle, by name.
fn kinds(bottles: &[Vec<u8>]) -> Vec<&'static str> {
    let limits = Limits::default();
    let kind = |b: &Vec<u8>| match Bottle::decode(b, &limits).expect("a bottle") {
        Bottle::GoodMorning(_) => "good_morning",
        Bottle::Hello(_) => "hello",
        Bottle::State(_) => "state",
        _ => "other",
    };
    bottles.iter().map(kind).collect()
}

/// Hands `bottles` to `ac` from `link` at `now`, and what it answers to `dev`; returns the
/// device's events.
fn deliver(
    ac: &mut Controller,
    dev: &mut Device,
    link: LinkId,
    bottles: &[Vec<u8>],
    now: Instant,
) -> Vec<DeviceEvent> {
    for b in bottles {
        let _ = ac.handle_receive(now, link, b, None);
    }
    let mut answers = Vec::new();
    loop {
        match ac.poll_output() {
            Output::Transmit(t) => answers.push(t.bytes.to_vec()),
            Output::Event(_) => {}
            Output::Timeout(_) => break,
        }
    }
    for a in &answers {
        let _ = dev.handle_receive(now, a);
    }
    let mut events = Vec::new();
    while let Output::Event(e) = dev.poll_output() {
        events.push(e);
    }
    events
}

/// Runs `dev` against `ac` on `link` from `at` until it joined; returns the time.
fn join(ac: &mut Controller, dev: &mut Device, link: LinkId, mut at: u64) -> u64 {
    for _ in 0..50 {
        let now = Instant::from_millis(at);
        let (out, mut events) = sent(dev, now);
        events.extend(deliver(ac, dev, link, &out, now));
        if events
            .iter()
            .any(|e| matches!(e, DeviceEvent::Joined { .. }))
        {
            return at;
        }
        at += 10;
    }
    panic!("dev0 did not join");
}

#[test]
fn a_relinked_session_sends_only_its_good_morning_until_the_ac_moves_it() {
    let (mut ac, mut dev) = (ac(1), device());
    let mut at = join(&mut ac, &mut dev, LinkId(1), 1);
    let (out, _) = sent(&mut dev, Instant::from_millis(at));
    deliver(&mut ac, &mut dev, LinkId(1), &out, Instant::from_millis(at));
    let session = dev.session().expect("joined");

    // The device moves; its GOOD_MORNING and the next ones are lost, and it sends nothing
    // else however many HELLO intervals pass, even with a new state to report.
    at += 10;
    dev.relink(Instant::from_millis(at));
    dev.set_state(Instant::from_millis(at), "comp0", b"moved")
        .expect("a running computation");
    let (out, _) = sent(&mut dev, Instant::from_millis(at));
    assert_eq!(kinds(&out), ["good_morning"]);
    let moved_at = at;
    for _ in 0..3 {
        at += HELLO_MS / 2;
        let (out, _) = sent(&mut dev, Instant::from_millis(at));
        assert!(
            kinds(&out).iter().all(|k| *k == "good_morning"),
            "{:?}",
            kinds(&out)
        );
    }
    // Once moved, two HELLO intervals without an answer make the AC silent.
    assert!(!dev.ac_silent(Instant::from_millis(moved_at + 2 * HELLO_MS - 1)));
    assert!(dev.ac_silent(Instant::from_millis(moved_at + 2 * HELLO_MS)));

    // The AC answers the GOOD_MORNING from link 2: the session moves there, and a HELLO
    // follows at once, which it accepts from link 2.
    at += HELLO_MS / 2;
    let now = Instant::from_millis(at);
    let (out, _) = sent(&mut dev, now);
    assert_eq!(kinds(&out), ["good_morning"]);
    deliver(&mut ac, &mut dev, LinkId(2), &out, now);
    let (out, _) = sent(&mut dev, now);
    assert_eq!(kinds(&out)[0], "hello", "{:?}", kinds(&out));
    deliver(&mut ac, &mut dev, LinkId(2), &out, now);
    assert_eq!(ac.stats().wrong_link, 0);
    assert_eq!(ac.stats().unknown_session, 0);
    assert_eq!(dev.session(), Some(session));
    // Answered, the AC is silent only after a quarter of the fence lease (375 ms), longer
    // than two HELLO intervals here.
    assert!(!dev.ac_silent(Instant::from_millis(at + 374)));
    assert!(dev.ac_silent(Instant::from_millis(at + 375)));
}

#[test]
fn a_relinked_session_the_ac_no_longer_knows_ends_and_the_device_joins_again() {
    let (mut first, mut dev) = (ac(1), device());
    let mut at = join(&mut first, &mut dev, LinkId(1), 1);
    let session = dev.session().expect("joined");

    // Another AC, which never heard of the session, answers the relinked GOOD_MORNING by
    // opening one of its own: the device's session is lost, not held.
    let mut other = ac(2);
    at += 10;
    let now = Instant::from_millis(at);
    dev.relink(now);
    let (out, _) = sent(&mut dev, now);
    assert_eq!(kinds(&out), ["good_morning"]);
    let events = deliver(&mut other, &mut dev, LinkId(7), &out, now);
    assert!(
        events.iter().any(|e| matches!(
            e,
            DeviceEvent::Stop {
                reason: StopReason::SessionLost,
                ..
            }
        )),
        "{events:?}"
    );
    assert_eq!(dev.session(), None);
    join(&mut other, &mut dev, LinkId(7), at + 10);
    assert_ne!(dev.session(), Some(session));
}
