//! Continuity through faults, end to end: the real `pcxses-ac` and `pcxses-device`
//! processes on 127.0.0.1, over UDP and TCP, frozen with SIGSTOP, killed and restarted, and
//! behind a userspace link that drops bottles. Every assertion reads the processes' JSON
//! event lines.
//!
//! A computation's progress is a counter's count, or a guest's tick (PacMan and Chat keep
//! it in bytes 1..5 of their state). What the AC holds for a computation shows on the
//! devices: a `state_stored` event is the AC's acknowledgement that it stored that state,
//! an `install` carries the LKGS the AC handed over. Read in the order the test received
//! them from all devices, these progresses never go down unless the AC stored an older
//! state over a newer one: a state reset.
//!
//! `loss_figures` (ignored) measures false deaths, fences and state resets under loss for
//! BENCHMARKS.md: `cargo test --release -p pcxses-tests --test programs_continuity -- --ignored
//! --nocapture loss_figures`.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use pcxses_core::wire::Bottle;
use pcxses_core::Limits;
use pcxses_demo::link::{Direction, Link, LinkShape, Tap};
use serde_json::Value;

use pcxses_tests::programs::{
    self, is, link_transport, path, tick_and_score, unhex, Proc, Setup, World,
};

/// The PacMan guest, built once for the whole file.
fn pacman() -> &'static [u8] {
    static MODULE: OnceLock<Vec<u8>> = OnceLock::new();
    MODULE.get_or_init(|| programs::build_guest("pcxses-guest-pacman"))
}

/// The Chat guest, built once for the whole file.
fn chat() -> &'static [u8] {
    static MODULE: OnceLock<Vec<u8>> = OnceLock::new();
    MODULE.get_or_init(|| programs::build_guest("pcxses-guest-chat"))
}

/// A world whose `counter-alpha` is PacMan, at HELLO `hello_ms` and dead `dead_ms`.
fn pacman_world(transport: &'static str, test: &str, hello_ms: u32, dead_ms: u32) -> World {
    World::with(
        transport,
        test,
        Setup {
            alpha_module: Some(pacman()),
            hello_ms: Some(hello_ms),
            dead_ms: Some(dead_ms),
            ..Setup::default()
        },
    )
}

/// Starts alpha at `addr`, running PacMan as `counter-alpha` natively, and Chat as `chat`
/// if the world has it, with `extra` arguments.
fn alpha_at(w: &World, addr: &str, extra: &[&str]) -> Proc {
    let mut args = vec![
        "--guest".to_string(),
        format!("counter-alpha={}", path(&w.dir.join("alpha.wasm"))),
    ];
    let chat = w.dir.join("chat.wasm");
    if chat.exists() {
        args.push("--guest".into());
        args.push(format!("chat={}", path(&chat)));
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    w.device_at(addr, "alpha", &args)
}

/// A computation's progress in `state`: a counter's count (8 bytes), else a guest's tick
/// (bytes 1..5); `None` for the empty state.
fn progress(state: &[u8]) -> Option<u64> {
    match state.len() {
        0 => None,
        8 => Some(u64::from_le_bytes(state.try_into().unwrap())),
        _ => state
            .get(1..5)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()).into()),
    }
}

/// The state an event shows the AC holding for `computation`: a `state_stored`'s state or
/// an `install`'s LKGS.
fn held(v: &Value, computation: &str) -> Option<Vec<u8>> {
    if v["computation"] != computation {
        return None;
    }
    let hex = if is(v, "state_stored") {
        v["state"].as_str()
    } else if is(v, "install") {
        v["lkgs"].as_str()
    } else {
        None
    }?;
    Some(unhex(hex))
}

/// Each time what the devices learned the AC holds for `computation` went back, read in
/// the order the test received the events of all `devices`: a description of each reset
/// read at `since` or later.
fn resets(devices: &[(&str, &Proc)], computation: &str, since: Instant) -> Vec<String> {
    let mut seen: Vec<(Instant, &str, &'static str, u64)> = Vec::new();
    for (name, d) in devices {
        for (at, v) in d.stamped(|v| is(v, "state_stored") || is(v, "install")) {
            if let Some(p) = held(&v, computation).as_deref().and_then(progress) {
                let kind = if is(&v, "install") {
                    "install"
                } else {
                    "state_stored"
                };
                seen.push((at, name, kind, p));
            }
        }
    }
    seen.sort_by_key(|(at, ..)| *at);
    seen.windows(2)
        .filter(|w| w[1].3 < w[0].3 && w[1].0 >= since)
        .map(|w| {
            format!(
                "{computation}: {} at {} ({}) after {} at {} ({})",
                w[1].3, w[1].1, w[1].2, w[0].3, w[0].1, w[0].2
            )
        })
        .collect()
}

/// The events among `d`'s lines `lines` that show a state the AC holds for
/// `computation`, with that state, in order.
fn held_in(d: &Proc, lines: std::ops::Range<usize>, computation: &str) -> Vec<(Value, Vec<u8>)> {
    let out = d.output.0.lock().unwrap();
    let end = lines.end.min(out.lines.len());
    out.lines[lines.start.min(end)..end]
        .iter()
        .filter_map(|v| held(v, computation).map(|s| (v.clone(), s)))
        .filter(|(_, s)| !s.is_empty())
        .collect()
}

/// The last state `d` was told the AC stored of `computation`, among its lines `lines`.
/// Asserts that every PacMan state `d` was told the AC holds, or was handed, from its
/// `from`-th line on is at or past the `acked` tick and score.
fn assert_not_behind(d: &Proc, from: usize, acked: (u32, u32), when: &str) {
    for (v, state) in held_in(d, from..usize::MAX, "counter-alpha") {
        let now = tick_and_score(&state);
        assert!(
            now.0 >= acked.0 && now.1 >= acked.1,
            "{when} the AC held tick {} score {} ({}); it had acknowledged tick {} score {}",
            now.0,
            now.1,
            v["event"],
            acked.0,
            acked.1
        );
    }
}

fn last_acked_in(d: &Proc, lines: std::ops::Range<usize>, computation: &str) -> Vec<u8> {
    held_in(d, lines, computation)
        .into_iter()
        .rfind(|(v, _)| is(v, "state_stored"))
        .map(|(_, state)| state)
        .expect("a state acknowledged")
}

/// The index of the first of `lines` printed after a gap of at least `gap` in the
/// printing device's own clock (`at_ms`): the first line after it woke from a freeze.
fn woke(lines: &[Value], gap: Duration) -> Option<usize> {
    let timed: Vec<(usize, f64)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v["at_ms"].as_f64().map(|at| (i, at)))
        .collect();
    timed
        .windows(2)
        .find(|w| w[1].1 - w[0].1 >= gap.as_secs_f64() * 1000.0)
        .map(|w| w[1].0)
}

/// The index of the first `stop` of `computation` among `lines` from `from` on.
fn stop_from(lines: &[Value], from: usize, computation: &str) -> Option<usize> {
    (from..lines.len()).find(|&i| is(&lines[i], "stop") && lines[i]["computation"] == computation)
}

/// A link in front of the AC that drops each bottle, both ways, with probability `loss`
/// per mille (changed while it runs), drawn from a generator seeded with `seed`.
fn lossy_link(w: &World, loss: Arc<AtomicU32>, seed: u64) -> Link {
    let mut rng = seed | 1;
    let tap: Tap = Box::new(move |_, bytes| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        ((rng % 1000) as u32 >= loss.load(Ordering::Relaxed)).then_some(bytes)
    });
    let upstream = w.addr.parse().unwrap();
    Link::start(link_transport(w), upstream, LinkShape::default(), Some(tap)).unwrap()
}

/// Computations of a [`LossLab`].
const LAB_COMPUTATIONS: [&str; 4] = ["counter-alpha", "chat", "counter-beta", "counter-gamma"];

/// Three devices behind a lossy link at HELLO 100 ms, dead 500 ms: alpha runs PacMan
/// (`counter-alpha`) and Chat natively, beta and gamma a counter each. Its figures count
/// from the first [`LossLab::set_loss`] on.
struct LossLab {
    devices: Vec<(&'static str, Proc)>,
    link: Link,
    loss: Arc<AtomicU32>,
    since: OnceLock<Instant>,
    w: World,
}

impl LossLab {
    /// Starts the lab without loss and waits until every device joined and the AC
    /// acknowledged a state of both guests.
    fn start(transport: &'static str, test: &str, seed: u64) -> LossLab {
        let w = World::with(
            transport,
            test,
            Setup {
                alpha_module: Some(pacman()),
                alpha_guests: &[("chat", chat())],
                dead_ms: Some(500),
                ..Setup::default()
            },
        );
        let loss = Arc::new(AtomicU32::new(0));
        let link = lossy_link(&w, loss.clone(), seed);
        let at = link.local_addr().to_string();
        let devices = vec![
            ("alpha", alpha_at(&w, &at, &[])),
            ("beta", w.device_at(&at, "beta", &[])),
            ("gamma", w.device_at(&at, "gamma", &[])),
        ];
        for (_, d) in &devices {
            d.wait_for("a join", |v| is(v, "joined"));
        }
        for c in ["counter-alpha", "chat"] {
            devices[0]
                .1
                .wait_for("a state of each guest at the AC", |v| {
                    is(v, "state_stored") && v["computation"] == c
                });
        }
        LossLab {
            devices,
            link,
            loss,
            since: OnceLock::new(),
            w,
        }
    }

    /// Drops this many bottles per thousand from now on.
    fn set_loss(&self, per_mille: u32) {
        self.since.get_or_init(Instant::now);
        self.loss.store(per_mille, Ordering::Relaxed);
    }

    /// When the figures start.
    fn since(&self) -> Instant {
        *self.since.get().expect("the loss was set")
    }

    /// Every state reset of every computation in the period.
    fn resets(&self) -> Vec<String> {
        let devices: Vec<(&str, &Proc)> = self.devices.iter().map(|(n, d)| (*n, d)).collect();
        LAB_COMPUTATIONS
            .iter()
            .flat_map(|c| resets(&devices, c, self.since()))
            .collect()
    }

    /// Computations the devices stopped in the period because their lease ran out.
    fn fences(&self) -> usize {
        let fenced = |v: &Value| is(v, "stop") && v["reason"] == "fenced";
        self.devices
            .iter()
            .flat_map(|(_, d)| d.stamped(fenced))
            .filter(|(at, _)| *at >= self.since())
            .count()
    }

    /// Devices the AC declared dead in the period (none was killed).
    fn false_deaths(&self) -> usize {
        let ac = self.w.ac().stamped(|v| is(v, "device_failed"));
        ac.iter().filter(|(at, _)| *at >= self.since()).count()
    }

    /// States of `computation` the AC acknowledged in the period.
    fn acknowledged(&self, computation: &str) -> usize {
        let stored = |v: &Value| is(v, "state_stored") && v["computation"] == computation;
        self.devices
            .iter()
            .flat_map(|(_, d)| d.stamped(stored))
            .filter(|(at, _)| *at >= self.since())
            .count()
    }

    /// The period's figures on one line.
    fn summary(&self) -> String {
        format!(
            "{} false deaths, {} fences, {} state resets, {} bottles dropped",
            self.false_deaths(),
            self.fences(),
            self.resets().len(),
            self.link.dropped()
        )
    }
}

/// Freezing for three dead intervals of 300 ms.
const FREEZE: Duration = Duration::from_millis(900);
/// Long enough for a lease of 2.25 s to run out, short of a dead interval of 3 s.
const LEASE_FREEZE: Duration = Duration::from_millis(2_625);
/// The link's loss pattern.
const SEED: u64 = 0x5eed_1055_0fb0_7701;

macro_rules! continuity_suite {
    ($name:ident, $transport:literal) => {
        mod $name {
            use super::*;

            #[test]
            fn a_device_frozen_for_three_dead_intervals_takes_no_step_when_it_wakes() {
                let w = pacman_world($transport, "frozen", 100, 300);
                let alpha = alpha_at(&w, &w.addr, &["--frames", "1"]);
                let beta = w.device("beta");
                beta.wait_for("beta's join", |v| is(v, "joined"));
                alpha.wait_for("a state of PacMan at the AC", |v| {
                    is(v, "state_stored") && v["computation"] == "counter-alpha"
                });
                alpha.signal("STOP");
                let frozen = Instant::now();
                let done = w.ac().wait_for("PacMan to move", |v| {
                    is(v, "migration_completed") && v["computation"] == "counter-alpha"
                });
                assert_eq!(done["to"], "beta");
                beta.wait_for("beta to install PacMan", |v| {
                    is(v, "install") && v["computation"] == "counter-alpha"
                });
                // The freeze lasts three dead intervals.
                std::thread::sleep(FREEZE.saturating_sub(frozen.elapsed()));
                alpha.signal("CONT");
                // The freeze shows as a gap in alpha's clock; then alpha stops PacMan.
                let gap = FREEZE - Duration::from_millis(100);
                alpha.wait_until("alpha to stop its stale copy after it woke", |o| {
                    woke(&o.lines, gap)
                        .and_then(|w| stop_from(&o.lines, w, "counter-alpha"))
                        .is_some()
                });
                let lines = alpha.output.0.lock().unwrap().lines.clone();
                let woke = woke(&lines, gap).unwrap();
                let stop = stop_from(&lines, woke, "counter-alpha").unwrap();
                assert_eq!(lines[stop]["reason"], "fenced", "{}", lines[stop]);
                let frame = |v: &Value| is(v, "frame") && v["computation"] == "counter-alpha";
                assert!(
                    lines[..woke].iter().any(frame),
                    "alpha printed no frame before the freeze"
                );
                // Every step prints a frame stamped with its time (`--frames 1`): none
                // between waking and the stop.
                let stale: Vec<&Value> = lines[woke..stop].iter().filter(|v| frame(v)).collect();
                assert!(
                    stale.is_empty(),
                    "the woken stale copy stepped {} times before its stop: {stale:?}",
                    stale.len()
                );
            }

            #[test]
            fn a_device_whose_lease_ran_out_resumes_its_game_from_the_acknowledged_state() {
                let w = pacman_world($transport, "lease", 1_000, 3_000);
                let alpha = alpha_at(&w, &w.addr, &[]);
                // Freeze right after an acknowledgement: the AC just heard a HELLO, so its
                // dead timer has 3 s to run while the lease of 2.25 s runs out. By then the
                // game is further on than a restarted one gets by its first acknowledgement.
                alpha.wait_for("PacMan's tick 60 at the AC", |v| {
                    is(v, "state_stored")
                        && v["computation"] == "counter-alpha"
                        && v["state"]
                            .as_str()
                            .is_some_and(|s| tick_and_score(&unhex(s)).0 >= 60)
                });
                alpha.signal("STOP");
                std::thread::sleep(LEASE_FREEZE);
                alpha.signal("CONT");
                // The freeze shows as a gap in alpha's clock; then alpha fences and joins
                // again.
                let gap = LEASE_FREEZE - Duration::from_millis(100);
                alpha.wait_until("alpha to fence and join again after it woke", |o| {
                    woke(&o.lines, gap)
                        .is_some_and(|w| o.lines[w..].iter().any(|v| is(v, "joined")))
                });
                let lines = alpha.output.0.lock().unwrap().lines.clone();
                let woke = woke(&lines, gap).unwrap();
                let stop = stop_from(&lines, woke, "counter-alpha").expect("a stop after waking");
                assert_eq!(lines[stop]["reason"], "fenced", "{}", lines[stop]);
                // What the AC acknowledged before the freeze is the LKGS.
                let acked = tick_and_score(&last_acked_in(&alpha, 0..woke, "counter-alpha"));
                let rejoined = woke + lines[woke..].iter().position(|v| is(v, "joined")).unwrap();
                alpha.wait_until("three states of PacMan after the re-join", |o| {
                    o.lines[rejoined..]
                        .iter()
                        .filter(|v| is(v, "state_stored") && v["computation"] == "counter-alpha")
                        .count()
                        >= 3
                });
                assert_not_behind(&alpha, rejoined, acked, "after the re-join");
                let deaths = w.ac().events(|v| is(v, "device_failed"));
                assert!(deaths.is_empty(), "the AC declared alpha dead: {deaths:?}");
            }

            #[test]
            fn a_device_killed_and_restarted_within_its_dead_interval_resumes_from_its_lkgs() {
                let w = pacman_world($transport, "restart", 100, 3_000);
                let alpha = alpha_at(&w, &w.addr, &[]);
                alpha.wait_for("a score of 600 at the AC", |v| {
                    is(v, "state_stored")
                        && v["computation"] == "counter-alpha"
                        && v["state"]
                            .as_str()
                            .is_some_and(|s| tick_and_score(&unhex(s)).1 >= 600)
                });
                alpha.signal("KILL");
                alpha.wait_closed();
                let acked = tick_and_score(&last_acked_in(&alpha, 0..usize::MAX, "counter-alpha"));
                let again = alpha_at(&w, &w.addr, &[]);
                again.wait_for("the new alpha to join", |v| is(v, "joined"));
                again.wait_for_nth("three states of PacMan", 3, |v| {
                    is(v, "state_stored") && v["computation"] == "counter-alpha"
                });
                assert_not_behind(&again, 0, acked, "after the restart");
                // The restart came within the dead interval.
                let deaths = w.ac().events(|v| is(v, "device_failed"));
                assert!(deaths.is_empty(), "the AC declared alpha dead: {deaths:?}");
            }

            #[test]
            fn a_lost_morph_ack_delays_the_migration_without_cancelling_it() {
                let w = World::new($transport, "morphack", 4_000);
                // The first MORPH ack towards the AC is dropped; the others pass.
                let acks = Arc::new(AtomicUsize::new(0));
                let seen = acks.clone();
                let tap: Tap = Box::new(move |dir, bytes| {
                    let ack = dir == Direction::ToAc
                        && matches!(
                            Bottle::decode(&bytes, &Limits::DEFAULT),
                            Ok(Bottle::MorphAck(_))
                        );
                    (!ack || seen.fetch_add(1, Ordering::SeqCst) > 0).then_some(bytes)
                });
                let upstream = w.addr.parse().unwrap();
                let link = Link::start(
                    link_transport(&w),
                    upstream,
                    LinkShape::default(),
                    Some(tap),
                )
                .unwrap();
                let alpha = w.device("alpha");
                let beta = w.device_at(&link.local_addr().to_string(), "beta", &[]);
                beta.wait_for("beta's join", |v| is(v, "joined"));
                alpha.wait_for("alpha's state", |v| is(v, "state_stored"));
                alpha.signal("KILL");
                let completed =
                    |v: &Value| is(v, "migration_completed") && v["computation"] == "counter-alpha";
                let moved = w
                    .ac()
                    .wait_until_within(programs::WAIT, |o| o.lines.iter().any(completed));
                let story = w
                    .ac()
                    .events(|v| v["computation"] == "counter-alpha" && !is(v, "state_stored"));
                assert!(moved, "the migration did not complete: {story:?}");
                let done = w.ac().events(completed).pop().unwrap();
                assert_eq!(done["to"], "beta");
                assert!(
                    acks.load(Ordering::SeqCst) >= 2,
                    "no MORPH ack after the lost one"
                );
                beta.wait_for("counter-alpha to run on beta", |v| {
                    is(v, "state_stored") && v["computation"] == "counter-alpha"
                });
                let failed = w.ac().events(|v| is(v, "migration_failed"));
                assert!(failed.is_empty(), "the MORPH was given up: {failed:?}");
                let cancelled = beta.events(|v| is(v, "stop") && v["reason"] == "cancelled");
                assert!(cancelled.is_empty(), "{cancelled:?}");
                let installs =
                    beta.events(|v| is(v, "install") && v["computation"] == "counter-alpha");
                assert_eq!(installs.len(), 1, "{installs:?}");
            }

            #[test]
            fn ten_percent_loss_for_a_minute_resets_no_state() {
                let lab = LossLab::start($transport, "loss10", SEED);
                lab.set_loss(100);
                // The loss lasts a minute.
                std::thread::sleep(Duration::from_secs(60));
                eprintln!("{} at 10% loss for 60 s: {}", $transport, lab.summary());
                let resets = lab.resets();
                assert!(resets.is_empty(), "state resets: {resets:#?}");
                // Both guests ran on through it.
                for c in ["counter-alpha", "chat"] {
                    let during = lab.acknowledged(c);
                    assert!(
                        during >= 100,
                        "{c}: only {during} states acknowledged in a minute"
                    );
                }
            }

            #[test]
            fn thirty_percent_loss_quarantines_nothing_and_both_guests_run_after_it() {
                let lab = LossLab::start($transport, "loss30", SEED);
                lab.set_loss(300);
                // The loss lasts 30 s.
                std::thread::sleep(Duration::from_secs(30));
                lab.set_loss(0);
                eprintln!("{} at 30% loss for 30 s: {}", $transport, lab.summary());
                // Both guests run again: the AC stores states of each, 20 of each since the
                // loss stopped.
                let ac = lab.w.ac();
                let from = ac.seen();
                let guests = ["counter-alpha", "chat"];
                let fresh = |o: &programs::Output, c: &str| {
                    o.lines[from..]
                        .iter()
                        .filter(|v| is(v, "state_stored") && v["computation"] == c)
                        .count()
                };
                let running = ac.wait_until_within(Duration::from_secs(60), |o| {
                    guests.iter().all(|c| fresh(o, c) >= 20)
                });
                let quarantined = ac.events(|v| is(v, "quarantined"));
                // The last things the AC did with each guest, for the message.
                let stalled: Vec<Vec<Value>> = guests
                    .iter()
                    .map(|c| {
                        let story = ac.events(|v| v["computation"] == *c && !is(v, "state_stored"));
                        story[story.len().saturating_sub(6)..].to_vec()
                    })
                    .collect();
                assert!(
                    running && quarantined.is_empty(),
                    "running again: {running}; quarantined: {quarantined:?}; what the AC did \
                     with the guests: {stalled:?}"
                );
            }
        }
    };
}

continuity_suite!(udp, "udp");
continuity_suite!(tcp, "tcp");

#[test]
#[ignore = "a benchmark of six minutes: run it for BENCHMARKS.md"]
fn loss_figures() {
    println!("| transport | loss | false deaths | fences | state resets | bottles dropped |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for transport in ["udp", "tcp"] {
        for per_mille in [0, 100, 300] {
            let test = format!("figures{per_mille}");
            let lab = LossLab::start(transport, &test, SEED);
            lab.set_loss(per_mille);
            std::thread::sleep(Duration::from_secs(60));
            println!(
                "| {} | {}% | {} | {} | {} | {} |",
                transport.to_uppercase(),
                per_mille / 10,
                lab.false_deaths(),
                lab.fences(),
                lab.resets().len(),
                lab.link.dropped()
            );
        }
    }
}
