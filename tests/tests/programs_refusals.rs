//! Refusals an operator sees without raising the log level: the real `pcxses-ac` prints a
//! `refused` event (peer address, device name, reason) and a `WARN` line for each refusal,
//! at most one per 100 ms however hard it is flooded, and counts every refusal by reason
//! in its `stats` event; a device that cannot reach or authenticate its AC says why at
//! `WARN`.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use pcxses_core::psk::{CHALLENGE_LEN, TRAILER_LEN};
use pcxses_core::wire::{Bottle, GoodMorning, JoinNonce, StateMode};
use serde_json::Value;

use pcxses_tests::programs::{encode, is, Proc, Setup, World};

/// The next `stats` event the AC prints once `done` holds of one.
fn stats_where(ac: &Proc, done: impl Fn(&Value) -> bool) -> Value {
    ac.wait_for("the AC's stats", |v| is(v, "stats") && done(v))
}

fn refused_count(stats: &Value, reason: &str) -> u64 {
    stats["refused"][reason]
        .as_u64()
        .unwrap_or_else(|| panic!("no {reason} count in {stats}"))
}

/// The AC's `refused` events of `reason`.
fn refusals(ac: &Proc, reason: &str) -> Vec<Value> {
    ac.events(|v| is(v, "refused") && v["reason"] == reason)
}

fn an_unknown_device_is_refused_by_name_and_address(transport: &'static str) {
    let w = World::new(transport, "unknown-device", 64);
    // Over QUIC `mallory` has a certificate of the devices' CA; no transport knows it.
    let mallory = w.device("mallory");
    let refused = w.ac().wait_for("a refusal of mallory", |v| {
        is(v, "refused") && v["reason"] == "unknown_device"
    });
    assert_eq!(refused["device"], "mallory", "{refused}");
    let peer = refused["peer"].as_str().expect("a peer address");
    assert!(peer.starts_with("127.0.0.1:"), "{refused}");
    let warn = w.ac().wait_logged("refused");
    assert!(
        warn.contains("WARN") && warn.contains("mallory") && warn.contains("unknown_device"),
        "{warn}"
    );
    stats_where(w.ac(), |s| refused_count(s, "unknown_device") >= 1);
    let told = mallory.wait_logged("the AC refused this device");
    assert!(
        told.contains("WARN") && told.contains("UnknownDevice"),
        "{told}"
    );
}

#[test]
fn an_unknown_device_is_refused_by_name_and_address_over_udp() {
    an_unknown_device_is_refused_by_name_and_address("udp");
}

#[test]
fn an_unknown_device_is_refused_by_name_and_address_over_tcp() {
    an_unknown_device_is_refused_by_name_and_address("tcp");
}

#[test]
fn an_unknown_device_is_refused_by_name_and_address_over_quic() {
    an_unknown_device_is_refused_by_name_and_address("quic");
}

#[test]
fn a_flood_of_junk_is_reported_at_a_bounded_rate_and_counted_in_full() {
    const JUNK: u64 = 3_000;
    let w = World::new("udp", "junk-flood", 64);
    let before = stats_where(w.ac(), |_| true);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let started = Instant::now();
    for i in 0..JUNK {
        // Version 1, then a type no bottle has.
        socket.send_to(&[0x01, 0xee, i as u8], &w.addr).unwrap();
    }
    let counted = |s: &Value| refused_count(s, "malformed") - refused_count(&before, "malformed");
    // Datagrams the kernel dropped never reach the AC; the rest are all counted.
    let after = stats_where(w.ac(), |s| counted(s) >= JUNK * 9 / 10);
    let elapsed = started.elapsed();
    let reports = refusals(w.ac(), "malformed");
    let bound = (elapsed.as_millis() / 100 + 2) as usize;
    assert!(
        !reports.is_empty() && reports.len() <= bound,
        "{} reports in {elapsed:?}",
        reports.len()
    );
    let reported: u64 = (reports.iter())
        .map(|r| 1 + r["suppressed"].as_u64().unwrap())
        .sum();
    assert!(reported <= counted(&after), "{reported} > {after}");
    let warned = w.ac().logged("refused").len();
    assert!(warned <= bound, "{warned} warnings in {elapsed:?}");
    for r in &reports {
        assert_eq!(r["device"], Value::Null, "{r}");
        assert_eq!(r["peer"], socket.local_addr().unwrap().to_string(), "{r}");
    }
    let total: u64 = (after["refused"].as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(total, after["rejected"].as_u64().unwrap(), "{after}");
}

#[test]
fn a_certificate_of_another_ca_is_refused_as_tls_by_address() {
    let w = World::new("quic", "foreign-ca", 64);
    // alpha's certificate and key, issued by a CA the AC does not trust.
    let other = w.dir.join("other");
    pcxses_transport_quic::certs::write_dev_pki(&other, &["alpha"]).unwrap();
    for file in ["alpha.pem", "alpha.key"] {
        std::fs::copy(other.join(file), w.dir.join(file)).unwrap();
    }
    let alpha = w.device("alpha");
    let refused = w.ac().wait_for("a TLS refusal", |v| {
        is(v, "refused") && v["reason"] == "tls"
    });
    assert!(
        refused["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{refused}"
    );
    assert!(!refused["detail"].as_str().unwrap().is_empty(), "{refused}");
    stats_where(w.ac(), |s| refused_count(s, "tls") >= 1);
    let told = alpha.wait_logged("TLS failure");
    assert!(told.contains("WARN"), "{told}");
    assert!(alpha.events(|v| is(v, "joined")).is_empty());
}

#[test]
fn a_device_with_another_key_says_it_cannot_authenticate_its_ac() {
    let w = keyed_world("wrong-key");
    // The AC holds alpha's key; alpha now has another, so the AC's challenge does not
    // authenticate.
    pcxses_program::keys::generate_psk(&w.dir, "alpha").unwrap();
    let alpha = w.device("alpha");
    let told = alpha.wait_logged("failed authentication");
    assert!(told.contains("WARN"), "{told}");
    stats_where(w.ac(), |s| s["challenged"].as_u64().unwrap() >= 1);
    assert!(alpha.events(|v| is(v, "joined")).is_empty());
}

#[test]
fn a_forged_seal_is_refused_as_not_authenticated_by_name() {
    let w = keyed_world("forged-seal");
    let gm = encode(&Bottle::GoodMorning(GoodMorning {
        device: "alpha",
        nonce: JoinNonce([7; 8]),
        mode: StateMode::InHello,
        hello_ms: 100,
        dead_ms: 600,
        max_bottle: 1200,
    }));
    // A GOOD_MORNING, an answer to a challenge, a counter and a tag, none of them right.
    let mut sealed = gm;
    sealed.extend_from_slice(&[0x5a; CHALLENGE_LEN + TRAILER_LEN]);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.send_to(&sealed, &w.addr).unwrap();
    let refused = w.ac().wait_for("a refusal of alpha", |v| {
        is(v, "refused") && v["reason"] == "not_authenticated"
    });
    assert_eq!(refused["device"], "alpha", "{refused}");
    assert_eq!(refused["peer"], socket.local_addr().unwrap().to_string());
    stats_where(w.ac(), |s| refused_count(s, "not_authenticated") >= 1);
}

fn keyed_world(test: &str) -> World {
    World::with(
        "udp",
        test,
        Setup {
            code_bytes: 64,
            keyed: true,
            ..Setup::default()
        },
    )
}

#[test]
fn a_device_that_cannot_reach_its_ac_says_why() {
    // Nothing listens on port 1 of the loopback.
    let tcp = World::new("tcp", "unreachable", 64);
    let device = tcp.device_at("127.0.0.1:1", "alpha", &[]);
    let told = device.wait_logged("cannot connect to the AC");
    assert!(
        told.contains("WARN") && told.contains("127.0.0.1:1"),
        "{told}"
    );
    let udp = World::new("udp", "unreachable", 64);
    let device = udp.device_at("127.0.0.1:1", "alpha", &[]);
    let started = Instant::now();
    let told = device.wait_logged("no session with the AC");
    assert!(
        told.contains("WARN") && told.contains("127.0.0.1:1"),
        "{told}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "warned too early"
    );
}
