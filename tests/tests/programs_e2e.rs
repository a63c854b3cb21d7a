//! End-to-end: the real `pcxses-ac` and `pcxses-device` processes on 127.0.0.1, killed with
//! SIGKILL, frozen with SIGSTOP, stopped with SIGTERM, for TCP, UDP and QUIC from one suite;
//! and attacked on the path by a userspace link that tampers with and replays bottles, for
//! TCP and UDP; and an AC killed fifty times, and in the middle of a migration, restarting
//! from its journal. Every assertion reads the processes' JSON event lines.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pcxses_attack::junk::{junk, BROKEN_PREFIXES};
use pcxses_core::wire::{Bottle, Manifest, Morph, ObjectChunk, Signature};
use pcxses_core::Limits;
use pcxses_demo::link::{Direction, Link, LinkShape, Tap};
use pcxses_program::transport::Transport;
use serde_json::Value;

use pcxses_tests::programs::{
    self, ac_executable, acked_counters, assert_restored_at_least, attacker, count_of, encode, is,
    last_acked, path, tick_and_score, unhex, Proc, Setup, World,
};

/// Sends `n` pieces of junk to the AC: datagrams over UDP and QUIC; over TCP, frames on
/// fresh connections, plus broken length prefixes.
fn flood(transport: &str, addr: &str, n: usize) {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    if transport != "tcp" {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..n {
            let _ = socket.send_to(&junk(&mut rng, i), addr);
        }
        return;
    }
    use std::io::Write;
    for chunk in 0..n / 100 {
        let Ok(mut conn) = std::net::TcpStream::connect(addr) else {
            continue;
        };
        for i in 0..100 {
            let g = junk(&mut rng, chunk * 100 + i);
            let mut frame = Vec::new();
            pcxses_core::frame::push_frame(&g, &mut frame);
            if conn.write_all(&frame).is_err() {
                break;
            }
        }
        let _ = conn.write_all(BROKEN_PREFIXES[chunk % 3]);
    }
}

/// Starts alpha, beta and gamma with the code key, gamma behind `link`, and kills alpha
/// once all joined and alpha reported a state.
fn kill_alpha_with_gamma_behind(w: &World, link: &Link) -> (Proc, Proc, Proc) {
    let key = w.dir.join("code-signing.pub");
    let key = ["--code-key", path(&key)];
    let alpha = w.device_with("alpha", &key);
    let beta = w.device_with("beta", &key);
    let gamma = w.device_at(&link.local_addr().to_string(), "gamma", &key);
    for d in [&alpha, &beta, &gamma] {
        d.wait_for("a join", |v| is(v, "joined"));
    }
    alpha.wait_for("alpha's state", |v| is(v, "state_stored"));
    alpha.signal("KILL");
    (alpha, beta, gamma)
}

/// Waits until `refuser` refused a MORPH for `reason`, the AC recorded it, and
/// `computation` moved to `next` instead.
fn refused_then_moved(
    w: &World,
    refuser: &Proc,
    name: &str,
    reason: &str,
    computation: &str,
    next: &str,
) {
    refuser.wait_for("the refusal", |v| {
        is(v, "morph_refused") && v["reason"] == reason
    });
    let recorded = format!("refused:{reason}");
    w.ac().wait_for("the AC to record the refusal", |v| {
        is(v, "migration_failed") && v["to"] == name && v["reason"] == recorded.as_str()
    });
    w.ac().wait_for("the migration to the next target", |v| {
        is(v, "migration_completed") && v["computation"] == computation && v["to"] == next
    });
    assert!(refuser
        .events(|v| is(v, "install") && v["computation"] == computation)
        .is_empty());
}

macro_rules! e2e_suite {
    ($name:ident, $transport:literal) => {
        mod $name {
            use super::*;

            #[test]
            fn sigkill_moves_the_computation_and_it_resumes_from_the_acknowledged_state() {
                let w = World::new($transport, "kill", 4_000);
                let alpha = w.device("alpha");
                let beta = w.device("beta");
                alpha.wait_for("alpha's counter to reach 10 at the AC", |v| {
                    is(v, "state_stored") && v["count"].as_u64().unwrap_or(0) >= 10
                });
                alpha.signal("KILL");
                alpha.wait_closed();
                let acked = last_acked(&alpha, "counter-alpha");
                let install = beta.wait_for("beta to install counter-alpha", |v| {
                    is(v, "install") && v["computation"] == "counter-alpha"
                });
                let restored = install["count"].as_u64().unwrap();
                assert!(
                    restored >= acked && restored >= 10,
                    "restored {restored}, alpha knew {acked}"
                );
                assert_eq!(install["code_bytes"], 4_000);
                let done = w
                    .ac()
                    .wait_for("the migration", |v| is(v, "migration_completed"));
                assert_eq!(
                    (done["computation"].as_str(), done["to"].as_str()),
                    (Some("counter-alpha"), Some("beta"))
                );
                // beta carries on counting from there.
                beta.wait_for("beta to report counter-alpha", |v| {
                    is(v, "state_stored")
                        && v["computation"] == "counter-alpha"
                        && v["count"].as_u64().unwrap_or(0) > restored
                });
            }

            #[test]
            fn a_frozen_device_is_replaced_and_stops_its_copy_when_it_wakes() {
                let w = World::new($transport, "stop", 4_000);
                let alpha = w.device("alpha");
                let beta = w.device("beta");
                alpha.wait_for("alpha's state", |v| is(v, "state_stored"));
                beta.wait_for("beta's join", |v| is(v, "joined"));
                alpha.signal("STOP");
                w.ac().wait_for("alpha's death", |v| {
                    is(v, "device_failed") && v["device"] == "alpha"
                });
                beta.wait_for("beta to install counter-alpha", |v| {
                    is(v, "install") && v["computation"] == "counter-alpha"
                });
                alpha.signal("CONT");
                let stop = alpha.wait_for("alpha to stop its stale copy", |v| {
                    is(v, "stop") && v["computation"] == "counter-alpha"
                });
                assert!(
                    stop["reason"] == "fenced" || stop["reason"] == "replaced",
                    "{stop}"
                );
                // It joins again, without the computation that moved.
                alpha.wait_for_nth("alpha to join again", 2, |v| is(v, "joined"));
                let rejoin = alpha.events(|v| is(v, "joined")).pop().unwrap();
                assert_eq!(rejoin["run"], serde_json::json!([]));
            }

            #[test]
            fn a_device_that_says_good_bye_is_not_recovered() {
                let w = World::new($transport, "bye", 4_000);
                let alpha = w.device("alpha");
                let beta = w.device("beta");
                alpha.wait_for("alpha's join", |v| is(v, "joined"));
                alpha.signal("TERM");
                alpha.wait_for("alpha to leave", |v| is(v, "left"));
                w.ac().wait_for("the AC to see it leave", |v| {
                    is(v, "device_left") && v["device"] == "alpha"
                });
                // Let several dead intervals pass, as beta's counter shows (50 ms a tick).
                let now = last_acked(&beta, "counter-beta");
                beta.wait_for("beta to count on for 1.5 s", |v| {
                    is(v, "state_stored") && v["count"].as_u64().unwrap_or(0) >= now + 30
                });
                let moved = w
                    .ac()
                    .events(|v| is(v, "device_failed") || is(v, "migration_started"));
                assert!(moved.is_empty(), "{moved:?}");
            }

            #[test]
            fn killing_the_target_mid_morph_passes_the_computation_on() {
                // A large object keeps the MORPH in flight long enough to kill its target.
                let w = World::new($transport, "mid", 3_000_000);
                let alpha = w.device("alpha");
                let beta = w.device("beta");
                let gamma = w.device("gamma");
                for d in [&alpha, &beta, &gamma] {
                    d.wait_for("a join", |v| is(v, "joined"));
                }
                alpha.wait_for("alpha's state", |v| is(v, "state_stored"));
                alpha.signal("KILL");
                let started = w
                    .ac()
                    .wait_for("the first MORPH", |v| is(v, "migration_started"));
                let first = started["to"].as_str().unwrap().to_string();
                let (target, other) = if first == "beta" {
                    (&beta, &gamma)
                } else {
                    (&gamma, &beta)
                };
                target.signal("KILL");
                let next = if first == "beta" { "gamma" } else { "beta" };
                let done = w.ac().wait_for("the migration to the other device", |v| {
                    is(v, "migration_completed")
                        && v["computation"] == "counter-alpha"
                        && v["to"] == next
                });
                assert_eq!(done["from"], "alpha");
                other.wait_for("the other device to install counter-alpha", |v| {
                    is(v, "install") && v["computation"] == "counter-alpha"
                });
                // Killed mid-transfer, or right after it completed: either way the AC saw
                // the first target fail and moved on.
                let failed = w
                    .ac()
                    .events(|v| is(v, "migration_failed") && v["to"] == first.as_str());
                let died = w
                    .ac()
                    .events(|v| is(v, "device_failed") && v["device"] == first.as_str());
                assert!(!failed.is_empty() || !died.is_empty());
            }

            #[test]
            fn a_flood_of_garbage_kills_no_device_and_leaves_memory_bounded() {
                let w = World::new($transport, "flood", 4_000);
                let alpha = w.device("alpha");
                let beta = w.device("beta");
                for d in [&alpha, &beta] {
                    d.wait_for("a join", |v| is(v, "joined"));
                }
                let before = w.ac().wait_for("the AC's stats", |v| is(v, "stats"));
                flood($transport, &w.addr, 30_000);
                // Let several dead intervals pass while the devices heartbeat.
                let now = last_acked(&beta, "counter-beta");
                beta.wait_for("beta to count on for 1.5 s", |v| {
                    is(v, "state_stored") && v["count"].as_u64().unwrap_or(0) >= now + 30
                });
                let after = w.ac().events(|v| is(v, "stats")).pop().unwrap();
                let deaths = w.ac().events(|v| is(v, "device_failed"));
                assert!(deaths.is_empty(), "false deaths: {deaths:?}");
                let rejected =
                    after["rejected"].as_u64().unwrap() - before["rejected"].as_u64().unwrap();
                // Over QUIC no datagram of it authenticates: quinn drops it before the core.
                let expected = if $transport == "quic" { 0 } else { 10_000 };
                assert!(
                    rejected >= expected,
                    "only {rejected} rejections counted: {after}"
                );
                let grown = after["rss_kb"].as_u64().unwrap() as i64
                    - before["rss_kb"].as_u64().unwrap() as i64;
                assert!(grown < 16 * 1024, "RSS grew by {grown} KiB");
                assert_eq!(after["threads"], before["threads"]);
                eprintln!(
                    "{} flood: {rejected} rejected, RSS {} -> {} KiB",
                    $transport, before["rss_kb"], after["rss_kb"]
                );
            }

            #[test]
            fn a_device_with_another_code_key_refuses_and_the_next_target_takes_over() {
                let w = World::with($transport, "signed", Setup { code_bytes: 4_000, signed: true, ..Setup::default() });
                let good = w.dir.join("code-signing.pub");
                let stranger = w.dir.join("stranger.pub");
                let alpha = w.device("alpha");
                let beta = w.device_with("beta", &["--code-key", path(&good)]);
                let gamma = w.device_with("gamma", &["--code-key", path(&stranger)]);
                for d in [&alpha, &beta, &gamma] {
                    d.wait_for("a join", |v| is(v, "joined"));
                }
                alpha.wait_for("alpha's state", |v| is(v, "state_stored"));
                alpha.signal("KILL");
                gamma.wait_for("gamma to refuse the MORPH", |v| {
                    is(v, "morph_refused") && v["reason"] == "BadSignature"
                });
                w.ac().wait_for("the AC to record the refusal", |v| {
                    is(v, "migration_failed")
                        && v["to"] == "gamma"
                        && v["reason"] == "refused:BadSignature"
                });
                let done = w
                    .ac()
                    .wait_for("the migration to beta", |v| is(v, "migration_completed"));
                assert_eq!(done["to"], "beta");
                beta.wait_for("beta to install counter-alpha", |v| {
                    is(v, "install") && v["computation"] == "counter-alpha"
                });
                assert!(gamma.events(|v| is(v, "install")).is_empty());
            }

            #[test]
            fn a_migrated_pacman_continues_from_exactly_the_acknowledged_state() {
                let pacman = programs::build_guest("pcxses-guest-pacman");
                let w = World::with($transport, "pacman", Setup { alpha_module: Some(&pacman), ..Setup::default() });
                let module = w.dir.join("alpha.wasm");
                let alpha = w.device_with("alpha", &["--guest", &format!("counter-alpha={}", path(&module))]);
                let beta = w.device("beta");
                beta.wait_for("beta's join", |v| is(v, "joined"));
                // Freeze alpha right after the AC acknowledged a state: that state is the LKGS.
                let acked = alpha.wait_for("alpha's fifth state at the AC", |v| {
                    is(v, "state_stored") && v["version"].as_u64().unwrap_or(0) >= 5
                });
                alpha.signal("STOP");
                let acked = alpha.events(|v| is(v, "state_stored")).pop().unwrap_or(acked);
                let acked = unhex(acked["state"].as_str().unwrap());
                let install = beta.wait_for("beta to install alpha's PacMan", |v| is(v, "install") && v["computation"] == "counter-alpha");
                assert_eq!(install["code_bytes"], pacman.len());
                let lkgs = unhex(install["lkgs"].as_str().unwrap());
                assert_eq!(lkgs, acked, "the target resumed from another state than the acknowledged one");
                // The game goes on from there on beta.
                let (tick, score) = tick_and_score(&lkgs);
                let later = beta.wait_for("PacMan to play on at beta", |v| {
                    is(v, "state_stored") && v["computation"] == "counter-alpha" && v["version"].as_u64().unwrap_or(0) >= 3
                });
                let (tick2, score2) = tick_and_score(&unhex(later["state"].as_str().unwrap()));
                assert!(tick2 > tick && score2 >= score, "tick {tick} -> {tick2}, score {score} -> {score2}");
                alpha.signal("KILL");
            }

            #[test]
            fn a_runaway_guest_is_stopped_and_reported_and_its_device_lives_on() {
                let runaway = wat::parse_str(
                    r#"(module (memory (export "memory") 1)
                        (func (export "pcx_step") (result i32) (loop (br 0)) (i32.const 0))
                        (func (export "pcx_capture") (result i64) (i64.const 8))
                        (func (export "pcx_restore_buffer") (param i32) (result i32) (i32.const 16))
                        (func (export "pcx_restore") (param i32) (result i32) (i32.const 0))
                        (func (export "pcx_render") (result i64) (i64.const 0)))"#,
                )
                .unwrap();
                let w = World::with($transport, "runaway", Setup { alpha_module: Some(&runaway), ..Setup::default() });
                let module = w.dir.join("alpha.wasm");
                let alpha = w.device_with("alpha", &["--guest", &format!("counter-alpha={}", path(&module))]);
                let failed = alpha.wait_for("the guest to be stopped", |v| is(v, "guest_failed"));
                assert_eq!(failed["error"], "out of fuel");
                // alpha keeps its session: several dead intervals later it has not died.
                let beta = w.device("beta");
                let now = last_acked(&beta, "counter-beta");
                beta.wait_for("beta to count on for 1.5 s", |v| {
                    is(v, "state_stored") && v["count"].as_u64().unwrap_or(0) >= now + 30
                });
                assert!(w.ac().events(|v| is(v, "device_failed")).is_empty());
            }

            #[test]
            fn devices_rejoin_an_ac_that_restarted() {
                let mut w = World::new($transport, "restart", 4_000);
                let alpha = w.device("alpha");
                let beta = w.device("beta");
                for d in [&alpha, &beta] {
                    d.wait_for("a join", |v| is(v, "joined"));
                }
                let addr = w.addr.clone();
                w.ac.as_ref().unwrap().signal("KILL");
                w.ac.as_ref().unwrap().wait_closed();
                w.ac = None;
                w.start_ac(Some(&addr));
                for d in [&alpha, &beta] {
                    d.wait_for_nth("a second join", 2, |v| is(v, "joined"));
                }
                w.ac()
                    .wait_for_nth("both devices at the new AC", 2, |v| is(v, "device_joined"));
                let runs: Vec<Value> = [&alpha, &beta]
                    .iter()
                    .map(|d| d.events(|v| is(v, "joined")).pop().unwrap()["run"].clone())
                    .collect();
                assert_eq!(
                    runs,
                    [
                        serde_json::json!(["counter-alpha"]),
                        serde_json::json!(["counter-beta"])
                    ]
                );
            }
        }
    };
}

/// Attacks on the path, by a link that sees the bottles: TCP and UDP only, since QUIC
/// seals them.
macro_rules! path_attacks {
    ($name:ident, $transport:literal) => {
        mod $name {
            use super::*;

            #[test]
            fn an_object_tampered_on_the_way_is_refused_and_the_next_target_takes_over() {
                let w = World::with(
                    $transport,
                    "tampered",
                    Setup {
                        code_bytes: 4_000,
                        signed: true,
                        ..Setup::default()
                    },
                );
                let link = attacker(&w, |b| match b {
                    Bottle::ObjectChunk(c) if c.index == 0 => {
                        let mut data = c.data.to_vec();
                        data[0] ^= 0x80;
                        Some(encode(&Bottle::ObjectChunk(ObjectChunk {
                            data: &data,
                            ..c.clone()
                        })))
                    }
                    _ => None,
                });
                let (_alpha, beta, gamma) = kill_alpha_with_gamma_behind(&w, &link);
                refused_then_moved(
                    &w,
                    &gamma,
                    "gamma",
                    "DigestMismatch",
                    "counter-alpha",
                    "beta",
                );
                beta.wait_for("beta to install counter-alpha", |v| {
                    is(v, "install") && v["computation"] == "counter-alpha"
                });
            }

            #[test]
            fn a_signed_manifest_for_another_device_is_refused_and_the_next_target_takes_over() {
                let w = World::with(
                    $transport,
                    "elsewhere",
                    Setup {
                        code_bytes: 4_000,
                        signed: true,
                        ..Setup::default()
                    },
                );
                // A manifest the code-signing key signed for beta, in place of gamma's.
                let signer = pcxses_program::keys::signer(&w.dir.join("code-signing.key")).unwrap();
                let link = attacker(&w, move |b| {
                    let Bottle::Morph(m) = b else { return None };
                    let man = Manifest::decode(m.manifest, &Limits::DEFAULT).unwrap();
                    let mut buf = vec![0; 4096];
                    let n = Manifest {
                        target: "beta",
                        ..man
                    }
                    .encode(&mut buf)
                    .unwrap();
                    let manifest = &buf[..n];
                    let signature = Some(signer.sign(manifest));
                    Some(encode(&Bottle::Morph(Morph {
                        manifest,
                        signature,
                        ..m.clone()
                    })))
                });
                let (_alpha, beta, gamma) = kill_alpha_with_gamma_behind(&w, &link);
                refused_then_moved(&w, &gamma, "gamma", "WrongTarget", "counter-alpha", "beta");
                beta.wait_for("beta to install counter-alpha", |v| {
                    is(v, "install") && v["computation"] == "counter-alpha"
                });
            }

            #[test]
            fn with_keys_a_tampered_chunk_fails_its_tag_and_the_transfer_recovers() {
                let w = World::with(
                    $transport,
                    "keyed",
                    Setup {
                        code_bytes: 4_000,
                        signed: true,
                        keyed: true,
                        ..Setup::default()
                    },
                );
                // Sealed bottles hide nothing, but any change breaks their tag: flip a byte
                // in the first three large bottles for gamma (object chunks).
                let mut flipped = 0;
                let tap: Tap = Box::new(move |dir, mut bytes: Vec<u8>| {
                    if dir == Direction::ToDevice && bytes.len() > 500 && flipped < 3 {
                        flipped += 1;
                        let at = bytes.len() / 2;
                        bytes[at] ^= 0x40;
                    }
                    Some(bytes)
                });
                let transport = if w.transport == "tcp" {
                    Transport::Tcp
                } else {
                    Transport::Udp
                };
                let link = Link::start(
                    transport,
                    w.addr.parse().unwrap(),
                    LinkShape::default(),
                    Some(tap),
                )
                .unwrap();
                let (_alpha, _beta, gamma) = kill_alpha_with_gamma_behind(&w, &link);
                // Without keys gamma would refuse the MORPH (digest mismatch); with them the
                // changed chunks never get that far and their retransmissions complete it.
                let done = w
                    .ac()
                    .wait_for("the migration", |v| is(v, "migration_completed"));
                assert_eq!(done["to"], "gamma");
                assert!(w.ac().events(|v| is(v, "migration_failed")).is_empty());
                gamma.wait_for("gamma to install counter-alpha", |v| {
                    is(v, "install") && v["computation"] == "counter-alpha"
                });
                assert!(gamma.events(|v| is(v, "morph_refused")).is_empty());
            }

            #[test]
            fn a_replayed_manifest_is_refused_and_the_next_target_takes_over() {
                let w = World::with(
                    $transport,
                    "replay",
                    Setup {
                        code_bytes: 4_000,
                        signed: true,
                        ..Setup::default()
                    },
                );
                // The first MORPH to gamma is recorded; its signed manifest then replaces
                // the one of the next MORPH to gamma, in the same session.
                let mut recorded: Option<(Vec<u8>, Option<Signature>)> = None;
                let link = attacker(&w, move |b| {
                    let Bottle::Morph(m) = b else { return None };
                    match &recorded {
                        None => {
                            recorded = Some((m.manifest.to_vec(), m.signature));
                            None
                        }
                        Some((manifest, signature)) if manifest[..] != *m.manifest => {
                            Some(encode(&Bottle::Morph(Morph {
                                manifest,
                                signature: *signature,
                                ..m.clone()
                            })))
                        }
                        Some(_) => None,
                    }
                });
                let (_, beta, gamma) = kill_alpha_with_gamma_behind(&w, &link);
                gamma.wait_for("gamma to install counter-alpha", |v| {
                    is(v, "install") && v["computation"] == "counter-alpha"
                });
                // A fresh alpha is the other host of counter-beta.
                let key = w.dir.join("code-signing.pub");
                let alpha = w.device_with("alpha", &["--code-key", path(&key)]);
                alpha.wait_for("alpha to join again", |v| is(v, "joined"));
                beta.signal("KILL");
                refused_then_moved(
                    &w,
                    &gamma,
                    "gamma",
                    "StaleSequence",
                    "counter-beta",
                    "alpha",
                );
                alpha.wait_for("alpha to install counter-beta", |v| {
                    is(v, "install") && v["computation"] == "counter-beta"
                });
                assert_eq!(gamma.events(|v| is(v, "install")).len(), 1);
            }
        }
    };
}

e2e_suite!(udp, "udp");
e2e_suite!(tcp, "tcp");
e2e_suite!(quic, "quic");
path_attacks!(udp_path, "udp");
path_attacks!(tcp_path, "tcp");

/// A death, or a computation moving to another device than the one it ran on.
fn moved_away(v: &serde_json::Value) -> bool {
    is(v, "device_failed") || (is(v, "migration_started") && v["from"] != v["to"])
}

#[test]
fn an_ac_killed_fifty_times_keeps_every_acknowledged_state() {
    let mut w = World::with(
        "udp",
        "crash",
        Setup {
            code_bytes: 4_000,
            journal: true,
            ..Setup::default()
        },
    );
    let devices = w.joined_devices();
    let addr = w.addr.clone();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for round in 0..50 {
        // Kill at a varied moment: after one to five more states of one device.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let (name, watched) = &devices[(rng % 3) as usize];
        let computation = format!("counter-{name}");
        let seen = watched
            .events(|v| is(v, "state_stored") && v["computation"] == computation.as_str())
            .len();
        watched.wait_for_nth("more states", seen + 1 + (rng >> 8) as usize % 5, |v| {
            is(v, "state_stored") && v["computation"] == computation.as_str()
        });
        let ac = w.ac.take().unwrap();
        ac.signal("KILL");
        ac.wait_closed();
        // What the devices were told the AC held, before it died.
        let acked = acked_counters(&devices, std::time::Instant::now());
        let deaths = ac.events(moved_away);
        assert!(deaths.is_empty(), "round {round}: {deaths:?}");
        drop(ac);
        w.start_ac(Some(&addr));
        let restored = w
            .ac()
            .wait_for("the restored states", |v| is(v, "restored"));
        assert_restored_at_least(&restored, &acked, &format!("round {round}"));
    }
    // Nobody died of the AC's downtime, and every counter still runs only at home: a device
    // that fenced itself while the AC was down got its counter back with its LKGS.
    let after = w.ac().events(moved_away);
    assert!(after.is_empty(), "{after:?}");
    for (name, d) in &devices {
        assert!(d
            .events(|v| is(v, "install") && v["replaces"] != *name)
            .is_empty());
        // Sessions outlive the restarts: the journal records every join, so a device joins
        // again only if it fenced itself while the AC was down (a slow restart).
        let joins = d.events(|v| is(v, "joined")).len();
        assert!(joins <= 5, "{name} joined {joins} times in 50 restarts");
    }
}

/// A link in front of the AC that drops the device's answers to a MORPH while `hold` is
/// set, so a MORPH sent through it stays in flight.
fn holding_link(w: &World, hold: Arc<AtomicBool>) -> Link {
    let tap: Tap = Box::new(move |dir, bytes| {
        let answer = matches!(
            Bottle::decode(&bytes, &Limits::DEFAULT),
            Ok(Bottle::ChunkAck(_) | Bottle::MorphAck(_) | Bottle::MorphFail(_))
        );
        (dir == Direction::ToDevice || !answer || !hold.load(Ordering::SeqCst)).then_some(bytes)
    });
    let upstream = w.addr.parse().unwrap();
    Link::start(Transport::Udp, upstream, LinkShape::default(), Some(tap)).unwrap()
}

#[test]
fn an_ac_killed_mid_migration_neither_loses_nor_doubles_the_computation() {
    let mut w = World::with(
        "udp",
        "midmorph",
        Setup {
            code_bytes: 4_000,
            journal: true,
            ..Setup::default()
        },
    );
    let hold = Arc::new(AtomicBool::new(true));
    let (to_beta, to_gamma) = (
        holding_link(&w, hold.clone()),
        holding_link(&w, hold.clone()),
    );
    let alpha = w.device("alpha");
    let beta = w.device_at(&to_beta.local_addr().to_string(), "beta", &[]);
    let gamma = w.device_at(&to_gamma.local_addr().to_string(), "gamma", &[]);
    for d in [&alpha, &beta, &gamma] {
        d.wait_for("a join", |v| is(v, "joined"));
    }
    alpha.wait_for_nth("three states", 3, |v| is(v, "state_stored"));
    alpha.signal("KILL");
    alpha.wait_closed();
    let acked = last_acked(&alpha, "counter-alpha");
    // The MORPH is journaled before it leaves; its target's answers are held back.
    let started = w.ac().wait_for("the MORPH", |v| {
        is(v, "migration_started") && v["computation"] == "counter-alpha"
    });
    let first = started["to"].as_str().unwrap().to_string();
    let ac = w.ac.take().unwrap();
    ac.signal("KILL");
    ac.wait_closed();
    assert!(ac.events(|v| is(v, "migration_completed")).is_empty());
    drop(ac);
    hold.store(false, Ordering::SeqCst);
    let addr = w.addr.clone();
    w.start_ac(Some(&addr));
    let restored = w
        .ac()
        .wait_for("the restored states", |v| is(v, "restored"));
    let held = count_of(restored["states"]["counter-alpha"].as_str().unwrap_or(""));
    assert!(held >= acked, "restored at {held}, acknowledged {acked}");
    // The restored AC cancels the MORPH it finds in flight, then moves the computation to
    // the other survivor.
    w.ac().wait_for("the cancelled MORPH", |v| {
        is(v, "migration_failed")
            && v["computation"] == "counter-alpha"
            && v["to"] == first.as_str()
    });
    let done = w.ac().wait_for("the migration", |v| {
        is(v, "migration_completed") && v["computation"] == "counter-alpha"
    });
    let second = done["to"].as_str().unwrap();
    assert_ne!(second, first);
    let (host, other) = if second == "beta" {
        (&beta, &gamma)
    } else {
        (&gamma, &beta)
    };
    let install = host.wait_for("the install", |v| {
        is(v, "install") && v["computation"] == "counter-alpha"
    });
    assert!(install["count"].as_u64().unwrap() >= acked);
    // It runs once: the first target never started it.
    assert!(other
        .events(|v| is(v, "install") && v["computation"] == "counter-alpha")
        .is_empty());
    let installs = host.events(|v| is(v, "install") && v["computation"] == "counter-alpha");
    assert_eq!(installs.len(), 1);
    host.wait_for("a state of the moved counter", |v| {
        is(v, "state_stored") && v["computation"] == "counter-alpha"
    });
}

#[test]
fn an_ac_refuses_a_damaged_journal_and_drops_a_record_cut_short_at_its_end() {
    let mut w = World::with(
        "udp",
        "damaged",
        Setup {
            code_bytes: 4_000,
            journal: true,
            ..Setup::default()
        },
    );
    let alpha = w.device("alpha");
    alpha.wait_for_nth("three states at the AC", 3, |v| is(v, "state_stored"));
    drop(alpha);
    let ac = w.ac.take().unwrap();
    ac.signal("KILL");
    ac.wait_closed();
    drop(ac);
    let journal = w.dir.join("ac.journal");
    let good = std::fs::read(&journal).unwrap();

    // Damage inside the file: refused, and the journal left as it was found, for whoever
    // looks into it.
    let mut corrupt = good.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x10;
    std::fs::write(&journal, &corrupt).unwrap();
    let out = Command::new(ac_executable())
        .args([
            "--config",
            path(&w.dir.join("ac.toml")),
            "--events",
            "jsonl",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started from a corrupt record");
    assert!(stderr.contains("corrupt record"), "{stderr}");
    assert_eq!(std::fs::read(&journal).unwrap(), corrupt);

    // A record cut short at the end was never committed: the AC drops it, says so, and
    // starts from the records before it.
    let cut = &good[..good.len() - 5];
    std::fs::write(&journal, cut).unwrap();
    w.start_ac(None);
    let restored = w
        .ac()
        .wait_for("the restored states", |v| is(v, "restored"));
    assert!(
        restored["states"]["counter-alpha"].is_string(),
        "{restored}"
    );
    w.ac().wait_logged("WARN");
    // The cut record is gone from the file.
    assert_ne!(std::fs::read(&journal).unwrap(), cut);
}
