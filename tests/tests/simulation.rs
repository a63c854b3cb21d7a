//! The seed sweep: a thousand random simulations, each checked after every step.
//!
//! Replay chosen seeds with `PCXSES_SEEDS=17,42 cargo test -p pcxses-tests --test
//! simulation` (or a range, `PCXSES_SEEDS=0..5000`).

use std::thread;

use pcxses_tests::checker::Counts;
use pcxses_tests::sim::{Sim, SimConfig};

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
}

#[test]
fn every_seed_keeps_every_invariant() {
    let seeds = seeds();
    let workers = thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(4);
    let chunks: Vec<Vec<u64>> = (0..workers)
        .map(|w| seeds.iter().copied().skip(w).step_by(workers).collect())
        .collect();
    let results: Vec<Result<Counts, String>> = thread::scope(|s| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                s.spawn(move || {
                    let mut total = Counts::default();
                    for &seed in chunk {
                        match Sim::new(SimConfig::random(seed)).run() {
                            Ok(report) => add(&mut total, &report.counts),
                            Err(failure) => return Err(failure.to_string()),
                        }
                    }
                    Ok(total)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .collect()
    });
    let mut total = Counts::default();
    for r in results {
        match r {
            Ok(c) => add(&mut total, &c),
            Err(failure) => panic!("{failure}"),
        }
    }
    eprintln!("{} seeds: {total:?}", seeds.len());
    if seeds.len() as u64 >= DEFAULT_SEEDS {
        // The sweep must exercise what it claims to check.
        assert!(total.deaths > 100, "{total:?}");
        assert!(total.migrations > 100, "{total:?}");
        assert!(total.failed_attempts > 10, "{total:?}");
        assert!(total.quarantined > 10, "{total:?}");
        assert!(total.installs > 100, "{total:?}");
        assert!(total.leaves > 10, "{total:?}");
    }
}
