//! The seed sweep: a thousand random simulations, each checked after every step; and named
//! scenarios of the faults the sweep draws from, with their outcomes asserted.
//!
//! Replay chosen seeds with `PCXSES_SEEDS=17,42 cargo test -p pcxses-tests --test
//! simulation` (or a range, `PCXSES_SEEDS=0..5000`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use pcxses_core::wire::{
    Bottle, GoodMorning, GoodMorningAck, Hello, HelloAck, JoinNonce, StateMode,
};
use pcxses_core::{Instant, SessionId};
use pcxses_tests::app::AppFault;
use pcxses_tests::checker::{Counts, StartKind};
use pcxses_tests::lab::encode;
use pcxses_tests::lease::LeaseTracker;
use pcxses_tests::sim::{Action, Failure, Report, Sim, SimConfig};

const DEFAULT_SEEDS: u64 = 1_000;

fn seeds() -> Vec<u64> {
    let Ok(spec) = std::env::var("PCXSES_SEEDS") else {
        return (0..DEFAULT_SEEDS).collect();
    };
    if let Some((a, b)) = spec.split_once("..") {
        let (a, b) = (a.trim().parse().unwrap(), b.trim().parse().unwrap());
        return (a..b).collect();
    }
    spec.split(',')
        .map(|s| s.trim().parse().expect("a seed"))
        .collect()
}

fn add(total: &mut Counts, c: &Counts) {
    total.deaths += c.deaths;
    total.migrations += c.migrations;
    total.failed_attempts += c.failed_attempts;
    total.quarantined += c.quarantined;
    total.orphaned += c.orphaned;
    total.states += c.states;
    total.installs += c.installs;
    total.leaves += c.leaves;
    total.fenced += c.fenced;
    total.steps += c.steps;
    total.skipped += c.skipped;
    total.fresh_starts += c.fresh_starts;
    total.resumed += c.resumed;
}

#[test]
fn every_seed_keeps_every_invariant() {
    let seeds = seeds();
    let workers = thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(4);
    // Workers take the next seed as they finish one, so that long seeds do not pile up on
    // one worker. Every seed runs, so that a failure reports all the seeds that fail.
    let next = AtomicUsize::new(0);
    let results: Vec<(Counts, Vec<Failure>)> = thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut total = Counts::default();
                    let mut failures = Vec::new();
                    while let Some(&seed) = seeds.get(next.fetch_add(1, Ordering::Relaxed)) {
                        match Sim::new(SimConfig::random(seed)).run() {
                            Ok(report) => add(&mut total, &report.counts),
                            Err(failure) => failures.push(failure),
                        }
                    }
                    (total, failures)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .collect()
    });
    let mut total = Counts::default();
    let mut failures = Vec::new();
    for (counts, f) in results {
        add(&mut total, &counts);
        failures.extend(f);
    }
    failures.sort_by_key(|f| f.seed);
    eprintln!("{} seeds: {total:?}", seeds.len() - failures.len());
    if let Some(first) = failures.first() {
        let list: Vec<String> = (failures.iter())
            .map(|f| format!("  seed {} at {} ms: {}", f.seed, f.at_ms, f.what))
            .collect();
        panic!(
            "{} of {} seeds failed:\n{}\n\nthe first:\n{first}",
            failures.len(),
            seeds.len(),
            list.join("\n")
        );
    }
    if seeds.len() as u64 >= DEFAULT_SEEDS {
        // The sweep must exercise what it claims to check.
        assert!(total.deaths > 100, "{total:?}");
        assert!(total.migrations > 100, "{total:?}");
        assert!(total.failed_attempts > 10, "{total:?}");
        assert!(total.quarantined > 10, "{total:?}");
        assert!(total.installs > 100, "{total:?}");
        assert!(total.leaves > 10, "{total:?}");
        assert!(total.fenced > 100, "{total:?}");
        assert!(total.skipped > 10, "{total:?}");
        assert!(total.resumed > 100, "{total:?}");
    }
}

/// `fault` strikes `dev0` at 3 s on a clean network, in each mode with and without keys;
/// `seed` chooses the seeds.
fn each_setup(seed: u64, fault: Action, app_fault: AppFault) -> Vec<Result<Report, Failure>> {
    let mut out = Vec::new();
    for (keyed, mode) in [
        (false, StateMode::InHello),
        (false, StateMode::Separate),
        (true, StateMode::InHello),
        (true, StateMode::Separate),
    ] {
        let mut cfg = SimConfig::new(seed * 4 + out.len() as u64, 3);
        cfg.keyed = keyed;
        cfg.mode = mode;
        cfg.schedule = vec![(3_000, fault)];
        cfg.app_fault = app_fault;
        out.push(Sim::new(cfg).run());
    }
    out
}

/// `comp0` ran again after 3 s, and its first start since resumed from the count the AC
/// had acknowledged, not from 0: the start was from that count and its first state the
/// next one.
fn assert_resumed(report: &Report) {
    let start = (report.starts.iter())
        .find(|s| s.computation == "comp0" && s.at_ms >= 3_000)
        .unwrap_or_else(|| panic!("comp0 never started again: {:?}", report.starts));
    let acked = start.acknowledged.expect("the AC held an LKGS of comp0");
    assert!(acked > 0, "{start:?}");
    assert_eq!(start.from, acked, "{start:?}");
    assert_eq!(start.first_state, Some(acked + 1), "{start:?}");
}

/// Runs every setup with `fault` on dev0, which the AC never declares dead: comp0 comes
/// back to dev0 by MORPH, from its LKGS. Returns the reports.
fn assert_handed_back_home(fault: Action) -> Vec<Report> {
    let mut reports = Vec::new();
    for result in each_setup(0, fault, AppFault::None) {
        let report = result.unwrap_or_else(|f| panic!("{f}"));
        assert_eq!(report.counts.deaths, 0, "{:?}", report.counts);
        assert_resumed(&report);
        let start = (report.starts.iter())
            .find(|s| s.computation == "comp0" && s.at_ms >= 3_000)
            .expect("checked");
        assert_eq!(start.device, 0, "comp0 comes back to its home: {start:?}");
        assert_eq!(start.how, StartKind::Install, "{start:?}");
        assert_eq!(start.replaces.as_deref(), Some("dev0"), "{start:?}");
        reports.push(report);
    }
    reports
}

#[test]
fn a_hang_past_the_fence_lease_resumes_from_the_lkgs() {
    for report in assert_handed_back_home(Action::FenceHang(0)) {
        // The device fenced itself.
        assert!(report.counts.fenced >= 1, "{:?}", report.counts);
    }
}

#[test]
fn a_reboot_within_the_dead_interval_resumes_from_the_lkgs() {
    assert_handed_back_home(Action::Reboot(0, 20));
}

#[test]
fn a_crash_moves_the_computation_with_its_lkgs() {
    for result in each_setup(0, Action::Crash(0), AppFault::None) {
        let report = result.unwrap_or_else(|f| panic!("{f}"));
        assert!(report.counts.deaths >= 1, "{:?}", report.counts);
        assert_resumed(&report);
    }
}

/// An application that steps without checking its lease, woken from a freeze past the
/// lease before the device judged it, steps after the lease ran out: I1 must say so.
#[test]
fn an_application_that_ignores_its_lease_is_caught() {
    let caught = (0..4)
        .flat_map(|seed| each_setup(seed, Action::FenceHang(0), AppFault::IgnoresLease))
        .filter_map(Result::err)
        .filter(|f| f.what.starts_with("I1:"))
        .count();
    assert!(caught > 0, "no run reported a step after the lease ran out");
}

/// An application that restarts a migrated computation from 0 breaks I2.
#[test]
fn an_application_that_ignores_the_lkgs_is_caught() {
    for result in each_setup(0, Action::Crash(0), AppFault::IgnoresLkgs) {
        let failure = result.expect_err("a restart from 0 must be reported");
        assert!(
            failure.what.starts_with("I2:") && failure.what.contains("not from its acknowledged"),
            "{failure}"
        );
    }
}

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// The lease tracker on its own: a device joined at 0 ms with a fence of 225 ms, a HELLO
/// sent at 100 ms acknowledged; a step before 325 ms is fine, one at 325 ms is not, and
/// neither is any later step in that session even after another HELLO ack arrives.
#[test]
fn the_lease_tracker_reports_a_step_after_its_lease_ran_out() {
    let nonce = JoinNonce([7; 8]);
    let session = SessionId(42);
    let mut t = LeaseTracker::new(false);
    let gm = Bottle::GoodMorning(GoodMorning {
        device: "dev0",
        nonce,
        mode: StateMode::InHello,
        hello_ms: 100,
        dead_ms: 300,
        max_bottle: 1_200,
    });
    t.on_sent(at(0), &encode(&gm));
    let ack = Bottle::GoodMorningAck(GoodMorningAck {
        session,
        nonce,
        mode: StateMode::InHello,
        hello_ms: 100,
        dead_ms: 300,
        fence_ms: 225,
        chunk_size: 1_000,
        run: Default::default(),
    });
    t.on_delivered(at(1), &encode(&ack));
    assert_eq!(t.lease(), Some(at(225)));
    t.on_told(at(1), session, "comp0")
        .expect("told in its session");
    t.on_step(at(50), "comp0").expect("within the lease");
    assert!(t.on_step(at(50), "comp1").is_err(), "comp1 was never told");

    let hello = |seq| {
        encode(&Bottle::Hello(Hello {
            session,
            seq,
            state: None,
        }))
    };
    let hello_ack = |seq| encode(&Bottle::HelloAck(HelloAck { session, seq }));
    t.on_sent(at(100), &hello(1));
    t.on_delivered(at(101), &hello_ack(1));
    assert_eq!(t.lease(), Some(at(325)));
    t.on_step(at(324), "comp0")
        .expect("within the renewed lease");
    let err = t
        .on_step(at(325), "comp0")
        .expect_err("the lease ran out at 325 ms");
    assert!(err.starts_with("I1:"), "{err}");

    // A late ack renews nothing for a session whose lease ran out.
    t.on_sent(at(300), &hello(2));
    t.on_delivered(at(330), &hello_ack(2));
    assert!(t.on_step(at(331), "comp0").is_err());

    // The same lapse, noticed only when a late ack arrives, fences the session too.
    let mut t = LeaseTracker::new(false);
    t.on_sent(at(0), &encode(&gm));
    t.on_delivered(at(1), &encode(&ack));
    t.on_told(at(1), session, "comp0")
        .expect("told in its session");
    t.on_sent(at(200), &hello(1));
    t.on_delivered(at(260), &hello_ack(1));
    assert!(t.on_step(at(261), "comp0").is_err());

    // A device that waits for its first HELLO ack before it starts anything may start
    // after a lease from its GOOD_MORNING that ran out unused.
    let mut t = LeaseTracker::new(false);
    t.on_sent(at(0), &encode(&gm));
    t.on_delivered(at(240), &encode(&ack));
    t.on_sent(at(240), &hello(1));
    t.on_delivered(at(241), &hello_ack(1));
    t.on_told(at(241), session, "comp0")
        .expect("told in its session");
    t.on_step(at(300), "comp0")
        .expect("within the lease of the HELLO ack");
}
