//! HELLO throughput of the Controller: `handle_receive` of one HELLO plus the drain of its
//! HELLO ack (and of any timer that comes due), with 10, 10,000 and 100,000 joined devices.
//! `scattered` visits devices in a stride that defeats the caches; `in_order` visits them
//! one after another, isolating cache effects from the work per HELLO.
//!
//! `cargo bench -p pcxses-core --bench hello`

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pcxses_core::{Controller, Instant, LinkId, Output};

const BATCH: usize = 10_000;

fn drain(ac: &mut Controller) -> Instant {
    loop {
        match ac.poll_output() {
            Output::Transmit(tx) => {
                black_box(tx.bytes);
            }
            Output::Event(e) => {
                black_box(e);
            }
            Output::Timeout(at) => return at,
        }
    }
}

fn hello_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("controller_hello");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.measurement_time(Duration::from_secs(4));
    group.sample_size(30);
    for n in [10usize, 10_000, 100_000] {
        let mut ac = common::new_controller(n);
        let hellos = common::join_all(&mut ac, n);
        for (pattern, stride) in [("scattered", 7919usize), ("in_order", 1)] {
            let mut next = 0usize;
            let mut t = 1_000u64;
            let mut wake = drain(&mut ac);
            group.bench_function(format!("{n}_devices_{pattern}"), |b| {
                b.iter(|| {
                    for _ in 0..BATCH {
                        // One microsecond per HELLO: every device is heard from well within
                        // its dead interval, and dead timers come due and re-arm as usual.
                        t += 1;
                        let now = Instant::from_micros(t);
                        if wake <= now {
                            ac.handle_timeout(now);
                            wake = drain(&mut ac);
                        }
                        let i = next % n;
                        next = next.wrapping_add(stride);
                        ac.handle_receive(now, LinkId(i as u64), &hellos[i], None)
                            .unwrap();
                        wake = wake.min(drain(&mut ac));
                    }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, hello_throughput);
criterion_main!(benches);
