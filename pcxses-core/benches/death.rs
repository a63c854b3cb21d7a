//! The cost of one device's death with its computation placed: its dead timer fires, its
//! computation is recovered, a target is chosen and the MORPH to it starts. With 10,000,
//! 100,000 and 1,000,000 registered devices, every one joined and running a computation of
//! its own, and none late with its HELLO.
//!
//! A victim device runs a computation that came to it by MORPH and stored a state there,
//! and dies: the timed part is the `handle_timeout` calls up to its death and the drain of
//! their output. Between deaths, untimed, the target acknowledges the MORPH, the victim
//! joins again and the target re-joins, which sends the computation back to the victim
//! (the least loaded device): every death meets the same registry.
//!
//! `cargo bench -p pcxses-core --bench death`

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use pcxses_core::controller::{Bounds, ComputationSpec, DeviceSpec};
use pcxses_core::wire::{Bottle, GoodMorning, Hello, JoinNonce, MorphAck, StateChunk, StateMode};
use pcxses_core::{
    Controller, ControllerEvent, Instant, LinkId, MemoryRepository, Output, SessionId,
};

/// The registered devices' HELLO interval: none is late while the bench runs.
const SLOW_HELLO_MS: u32 = 1_000_000_000;

/// A MORPH seen on the way out: its target's link, session, id and handle.
#[derive(Clone, Copy)]
struct Sent {
    link: LinkId,
    session: SessionId,
    morph: u32,
    handle: u16,
}

/// What a drain showed.
#[derive(Default)]
struct Drained {
    wake: Option<Instant>,
    morph: Option<Sent>,
    session: Option<SessionId>,
    died: bool,
}

fn drain(ac: &mut Controller) -> Drained {
    let mut out = Drained::default();
    loop {
        match ac.poll_output() {
            Output::Transmit(t) => match Bottle::decode(t.bytes, &Default::default()) {
                Ok(Bottle::Morph(m)) => {
                    out.morph = Some(Sent {
                        link: t.to,
                        session: m.session,
                        morph: m.morph,
                        handle: m.handle,
                    })
                }
                Ok(Bottle::GoodMorningAck(a)) => out.session = Some(a.session),
                other => {
                    black_box(other.is_ok());
                }
            },
            Output::Event(e) => {
                out.died |= matches!(e, ControllerEvent::DeviceFailed { .. });
                black_box(e);
            }
            Output::Timeout(at) => {
                out.wake = Some(at);
                return out;
            }
        }
    }
}

struct Fleet {
    ac: Controller,
    n: usize,
    now: Instant,
    wake: Instant,
    nonce: u64,
    /// The MORPH the last death started.
    pending: Sent,
}

impl Fleet {
    /// `n` registered devices, all joined, and the victim running its own computation.
    fn new(n: usize) -> Fleet {
        let mut config = common::config(n);
        config
            .devices
            .push(DeviceSpec::new("victim", &["victim-comp"]));
        config
            .computations
            .push(ComputationSpec::new("victim-comp", "code"));
        let ms = Duration::from_millis;
        config.hello = Bounds::new(ms(1), ms(u64::from(SLOW_HELLO_MS)));
        config.dead = Bounds::new(ms(3), ms(3 * u64::from(SLOW_HELLO_MS)));
        // The victim dies at its instant, not on the grid: this times one death.
        config.dead_grid = Duration::ZERO;
        let mut repo = MemoryRepository::default();
        repo.insert("code", vec![7; 100]);
        let mut ac = Controller::new(config, repo, Instant::from_millis(0)).unwrap();
        common::join_all_with(&mut ac, n, (SLOW_HELLO_MS, 3 * SLOW_HELLO_MS));
        let mut fleet = Fleet {
            ac,
            n,
            now: Instant::from_millis(0),
            wake: Instant::MAX,
            nonce: 1 << 40,
            pending: Sent {
                link: LinkId(0),
                session: SessionId::NONE,
                morph: 0,
                handle: 0,
            },
        };
        fleet.join(n, (1, 3));
        fleet.die();
        fleet
    }

    fn receive(&mut self, link: LinkId, bottle: &Bottle<'_>) -> Drained {
        let mut buf = [0u8; 1500];
        let len = bottle.encode(&mut buf).unwrap();
        (self.ac)
            .handle_receive(self.now, link, &buf[..len], None)
            .unwrap();
        let d = drain(&mut self.ac);
        self.wake = d.wake.unwrap();
        d
    }

    /// Device `i` (the victim is `n`) joins, or re-joins, proposing `(hello_ms, dead_ms)`.
    fn join(&mut self, i: usize, (hello_ms, dead_ms): (u32, u32)) -> Drained {
        let name = match i == self.n {
            true => "victim".to_string(),
            false => format!("device-{i:06}"),
        };
        self.nonce += 1;
        let gm = Bottle::GoodMorning(GoodMorning {
            device: &name,
            nonce: JoinNonce(self.nonce.to_le_bytes()),
            mode: StateMode::InHello,
            hello_ms,
            dead_ms,
            max_bottle: 1200,
        });
        self.receive(LinkId(i as u64), &gm)
    }

    /// Untimed: the victim runs the computation again, with a state stored from there.
    fn prepare(&mut self) {
        let p = self.pending;
        let ack = Bottle::MorphAck(MorphAck {
            session: p.session,
            morph: p.morph,
        });
        self.receive(p.link, &ack);
        let victim = LinkId(self.n as u64);
        let session = self.join(self.n, (1, 3)).session.unwrap();
        let back = self.join(p.link.0 as usize, (SLOW_HELLO_MS, 3 * SLOW_HELLO_MS));
        let m = back.morph.expect("the computation goes back to the victim");
        assert_eq!(m.link, victim);
        let ack = Bottle::MorphAck(MorphAck {
            session: m.session,
            morph: m.morph,
        });
        self.receive(victim, &ack);
        let hello = Bottle::Hello(Hello {
            session,
            seq: 1,
            state: Some(StateChunk {
                handle: m.handle,
                version: 1,
                total_len: 16,
                index: 0,
                data: &[1; 16],
            }),
        });
        self.receive(victim, &hello);
    }

    /// Timed: time runs to the victim's death, whose computation starts moving.
    fn die(&mut self) {
        for _ in 0..1_000 {
            self.now = self.wake;
            self.ac.handle_timeout(self.now);
            let d = drain(&mut self.ac);
            self.wake = d.wake.unwrap();
            if let Some(m) = d.morph.filter(|_| d.died) {
                self.pending = m;
                return;
            }
        }
        panic!("the victim did not die");
    }
}

fn death(c: &mut Criterion) {
    let mut group = c.benchmark_group("controller_death");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(30);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));
    for n in [10_000usize, 100_000, 1_000_000] {
        let mut fleet = Fleet::new(n);
        group.bench_function(format!("{n}_devices"), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    fleet.prepare();
                    let start = std::time::Instant::now();
                    fleet.die();
                    timed += start.elapsed();
                }
                timed
            })
        });
    }
    group.finish();
}

criterion_group!(benches, death);
criterion_main!(benches);
