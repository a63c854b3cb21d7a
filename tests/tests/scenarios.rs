//! One scenario per phase and branch of the protocol, driven step by step in the lab.

use pcxses_core::controller::SnapshotError;
use pcxses_core::controller::{
    ComputationId, DeviceId, MigrationFailure, OrphanReason, Placement, QuarantineReason,
};
use pcxses_core::device::{DeviceEvent, StopReason};
use pcxses_core::policy::LeastLoadedPolicy;
use pcxses_core::wire::{
    Bottle, GoodMorningAck, Hello, MorphAck, MorphFailReason, RejectReason, StateBottle,
    StateChunk, StateMode,
};
use pcxses_core::{ControllerEvent, InputError, Instant, LinkId, SessionId};
use pcxses_tests::lab::{encode, Lab, Verdict};
use pcxses_tests::memory_journal::MemoryJournal;
use std::time::Duration;

fn comp(i: u32) -> ComputationId {
    ComputationId(i)
}

fn link(i: usize) -> LinkId {
    LinkId(i as u64 + 1)
}

fn session(lab: &Lab, i: usize) -> SessionId {
    lab.ac().session_of(DeviceId(i as u32)).expect("joined")
}

/// Cuts device `i` off from the AC in both directions.
fn partition(lab: &mut Lab, i: usize) {
    let l = link(i);
    lab.drop_where(move |p| p.from == l || p.to == l);
}

/// The dead interval, in milliseconds, the AC granted in its first GOOD_MORNING ack.
fn granted_dead_ms(lab: &Lab) -> u64 {
    match lab.sent("good_morning_ack")[0].bottle() {
        Some(Bottle::GoodMorningAck(ack)) => u64::from(ack.dead_ms),
        _ => panic!("not an ack"),
    }
}

fn completed_to(lab: &Lab, c: u32) -> Vec<DeviceId> {
    lab.ac_events_where(|e| matches!(e, ControllerEvent::MigrationCompleted { computation, .. } if *computation == comp(c)))
        .into_iter()
        .map(|(_, e)| match e {
            ControllerEvent::MigrationCompleted { to, .. } => to,
            _ => unreachable!(),
        })
        .collect()
}

// ---- GOOD MORNING ----

#[test]
fn join_negotiates_clamped_intervals_and_names_the_computations_to_run() {
    let mut lab = Lab::new(1, |c| {
        c.hello.min = Duration::from_millis(50);
        c.dead.max = Duration::from_secs(2);
    });
    lab.boot(0, |d| {
        d.hello = Duration::from_millis(1);
        d.dead = Duration::from_secs(1_000);
        d.mode = StateMode::Separate;
    });
    lab.run(50);
    let acks = lab.sent("good_morning_ack");
    let ack = acks.last().expect("a GOOD_MORNING ack");
    let Some(Bottle::GoodMorningAck(GoodMorningAck {
        hello_ms,
        dead_ms,
        fence_ms,
        mode,
        run,
        ..
    })) = ack.bottle()
    else {
        panic!("not an ack");
    };
    assert_eq!((hello_ms, dead_ms, mode), (50, 2_000, StateMode::Separate));
    assert_eq!(fence_ms, 2_000 - 500, "fence = dead - dead/4");
    assert_eq!(&run[..], ["comp0"]);
    let joined = lab.device_events_where(0, |e| matches!(e, DeviceEvent::Joined { .. }));
    assert_eq!(joined.len(), 1);
    // The device reports what was granted, not what it proposed.
    let DeviceEvent::Joined {
        hello,
        dead,
        fence,
        mode,
        ..
    } = &joined[0].1
    else {
        unreachable!()
    };
    let ms = Duration::from_millis;
    assert_eq!(
        (*hello, *dead, *fence),
        (ms(50), ms(2_000), Some(ms(1_500)))
    );
    assert_eq!(*mode, StateMode::Separate);
}

#[test]
fn dead_interval_is_at_least_three_hellos() {
    let mut lab = Lab::new(1, |_| {});
    lab.boot(0, |d| {
        d.hello = Duration::from_millis(200);
        d.dead = Duration::from_millis(250);
    });
    lab.run(50);
    let ack = lab.sent("good_morning_ack").pop().unwrap();
    let Some(Bottle::GoodMorningAck(a)) = ack.bottle() else {
        panic!()
    };
    assert_eq!((a.hello_ms, a.dead_ms), (200, 600));
}

#[test]
fn an_unknown_device_is_rejected_with_a_reason() {
    let mut lab = Lab::new(1, |_| {});
    lab.boot(0, |d| d.name = "ghost".into());
    lab.run(100);
    let rejected = lab.device_events_where(0, |e| {
        matches!(
            e,
            DeviceEvent::Rejected {
                reason: RejectReason::UnknownDevice
            }
        )
    });
    assert!(!rejected.is_empty());
    assert!(lab.ac().stats().unknown_device >= 1);
    assert_eq!(lab.ac().session_of(DeviceId(0)), None);
    assert!(lab.device(0).session().is_none());
}

#[test]
fn a_restarted_device_gets_a_fresh_session_and_its_old_one_is_dead() {
    let mut lab = Lab::new(2, |_| {});
    lab.run(100);
    let old = session(&lab, 0);
    lab.crash(0);
    lab.boot(0, |_| {});
    lab.run(100);
    let new = session(&lab, 0);
    assert_ne!(old, new);
    assert_eq!(lab.device(0).session(), Some(new));
    // The old incarnation's HELLO no longer counts for anything.
    let before = lab.ac().snapshot();
    let hello = encode(&Bottle::Hello(Hello {
        session: old,
        seq: 1,
        state: None,
    }));
    assert!(lab.inject_to_ac(link(0), &hello).is_err());
    assert_eq!(lab.ac().snapshot(), before);
    // Its own computation came back to it, not moved elsewhere.
    assert_eq!(
        lab.ac().placement(comp(0)),
        Some(Placement::Running(DeviceId(0)))
    );
    assert!(lab
        .ac_events_where(|e| matches!(e, ControllerEvent::MigrationStarted { .. }))
        .is_empty());
}

// ---- PARTY ----

#[test]
fn hello_resets_the_dead_timer_and_state_never_does() {
    // Without fencing, so that the device keeps its session instead of joining again.
    let mut lab = Lab::new(2, |c| c.fencing = false);
    for i in 0..2 {
        lab.boot(i, |d| d.mode = StateMode::Separate);
    }
    lab.run(100);
    // Lose dev0's HELLOs, but let its STATEs through while it keeps changing state.
    let l = link(0);
    lab.drop_where(move |p| p.from == l && p.kind() == "hello");
    for k in 0..10u8 {
        let now = lab.now;
        // Refused once the device heard it was replaced and stopped the computation.
        let _ = lab.device(0).set_state(now, "comp0", &[k; 8]);
        lab.run(50);
    }
    let failed = lab.ac_events_where(
        |e| matches!(e, ControllerEvent::DeviceFailed { device, .. } if device.0 == 0),
    );
    assert_eq!(failed.len(), 1, "STATE kept a device alive");
    assert!(lab.sent("state").len() >= 3);
    // HELLOs alone keep dev1 alive for ten dead intervals.
    assert!(lab
        .ac_events_where(
            |e| matches!(e, ControllerEvent::DeviceFailed { device, .. } if device.0 == 1)
        )
        .is_empty());
}

#[test]
fn joined_mode_carries_state_on_hello_and_split_mode_on_state() {
    for mode in [StateMode::InHello, StateMode::Separate] {
        let mut lab = Lab::new(1, |_| {});
        lab.boot(0, |d| d.mode = mode);
        lab.run(100);
        let now = lab.now;
        lab.device(0)
            .set_state(now, "comp0", b"twelve bytes")
            .unwrap();
        lab.run(200);
        let on_hello = lab
            .sent("hello")
            .iter()
            .filter(|p| {
                matches!(
                    p.bottle(),
                    Some(Bottle::Hello(Hello { state: Some(_), .. }))
                )
            })
            .count();
        let on_state = lab.sent("state").len();
        match mode {
            StateMode::InHello => assert_eq!((on_hello, on_state), (1, 0)),
            StateMode::Separate => assert_eq!((on_hello, on_state), (0, 1)),
        }
        assert_eq!(lab.ac().lkgs(comp(0)).unwrap().0, b"twelve bytes");
        let stored = lab.device_events_where(0, |e| {
            matches!(e, DeviceEvent::StateStored { version: 1, .. })
        });
        assert_eq!(stored.len(), 1, "the device learns what the AC holds");
    }
}

#[test]
fn unchanged_state_is_not_resent() {
    let mut lab = Lab::new(1, |_| {});
    lab.run(100);
    for _ in 0..5 {
        let now = lab.now;
        lab.device(0).set_state(now, "comp0", b"same").unwrap();
        lab.run(150);
    }
    let stored = lab.ac_events_where(|e| matches!(e, ControllerEvent::StateStored { .. }));
    assert_eq!(stored.len(), 1);
    let carrying = lab
        .sent("hello")
        .iter()
        .filter(|p| {
            matches!(
                p.bottle(),
                Some(Bottle::Hello(Hello { state: Some(_), .. }))
            )
        })
        .count();
    assert_eq!(carrying, 1);
}

#[test]
fn a_large_state_is_segmented_and_reassembled_over_loss() {
    let mut lab = Lab::new(1, |_| {});
    lab.run(100);
    let mut n = 0u32;
    lab.set_filter(move |p| {
        n += 1;
        if p.kind() == "state" && n.is_multiple_of(3) {
            Verdict::Drop
        } else {
            Verdict::Deliver
        }
    });
    let big: Vec<u8> = (0..20_000u32).map(|i| (i * 13 % 256) as u8).collect();
    let now = lab.now;
    lab.device(0).set_state(now, "comp0", &big).unwrap();
    lab.run(3_000);
    assert_eq!(lab.ac().lkgs(comp(0)).unwrap().0, &big[..]);
    assert!(lab.sent("state").len() > 18, "20 kB in ~1.2 kB chunks");
    assert_eq!(
        lab.device_events_where(0, |e| matches!(e, DeviceEvent::StateStored { .. }))
            .len(),
        1
    );
}

/// A computation whose state is a counter, behind the State Update Interface.
struct Counter(u64);

impl pcxses_core::StateUpdateInterface for Counter {
    type Error = &'static str;
    fn capture(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_le_bytes());
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), Self::Error> {
        self.0 = u64::from_le_bytes(state.try_into().map_err(|_| "not a counter")?);
        Ok(())
    }
}

#[test]
fn the_state_update_interface_carries_a_computation_across_devices() {
    let mut lab = Lab::new(2, |_| {});
    lab.run(100);
    let mut scratch = Vec::new();
    let counter = Counter(41);
    let now = lab.now;
    lab.device(0)
        .capture(now, "comp0", &counter, &mut scratch)
        .unwrap();
    lab.run(200);
    lab.crash(0);
    lab.run(600);
    let installs = lab.device_events_where(1, |e| matches!(e, DeviceEvent::Install(_)));
    let DeviceEvent::Install(inst) = &installs[0].1 else {
        unreachable!()
    };
    let mut restored = Counter(0);
    pcxses_core::StateUpdateInterface::restore(&mut restored, inst.lkgs()).unwrap();
    assert_eq!(restored.0, 41);
    assert!(pcxses_core::StateUpdateInterface::restore(&mut restored, b"bad").is_err());
}

/// From now on device 0's bottles arrive from `new` instead of its link, and only what the
/// AC sends to `new` reaches it.
fn readdress(lab: &mut Lab, new: LinkId) {
    let old = link(0);
    lab.set_filter(move |p| {
        if p.from == old {
            p.from = new;
        }
        if p.to == new {
            p.to = old;
            return Verdict::Deliver;
        }
        if p.to == old && p.from == pcxses_tests::sim::AC {
            return Verdict::Drop;
        }
        Verdict::Deliver
    });
}

#[test]
fn a_keyed_device_whose_address_changes_keeps_its_session() {
    let key = pcxses_core::psk::Psk([7; 32]);
    let mut lab = Lab::new(1, |c| c.devices[0].psk = Some(key.clone()));
    lab.boot(0, |d| d.psk = Some(key));
    lab.run(200);
    let session = session(&lab, 0);
    let new = LinkId(77);
    readdress(&mut lab, new);
    lab.run(1_000);
    assert_eq!(lab.ac().session_of(DeviceId(0)), Some(session));
    assert!(lab
        .ac_events_where(|e| matches!(e, ControllerEvent::DeviceFailed { .. }))
        .is_empty());
    assert!(
        lab.sent("hello_ack").iter().any(|p| p.to == new),
        "acks follow the new address"
    );
}

#[test]
fn an_unauthenticated_device_whose_address_changes_joins_again_from_there() {
    let mut lab = Lab::new(1, |_| {});
    lab.run(100);
    let old = session(&lab, 0);
    let new = LinkId(77);
    let since = lab.wire.len();
    readdress(&mut lab, new);
    lab.run(1_000);
    // Its session id is no pass from another address: the device's lease ran out, it
    // stopped and joined again from the new address, before the AC declared it dead.
    let now = session(&lab, 0);
    assert_ne!(now, old);
    assert!(lab.ac().stats().wrong_link > 0);
    assert!(lab
        .ac_events_where(|e| matches!(e, ControllerEvent::DeviceFailed { .. }))
        .is_empty());
    assert_eq!(
        lab.ac().placement(comp(0)),
        Some(Placement::Running(DeviceId(0)))
    );
    let acks = lab.answers_to(new, since);
    assert!(acks.iter().any(|p| p.kind() == "hello_ack"));
    assert!(
        acks.iter()
            .all(|p| p.kind() != "hello_ack" || p.bottle().and_then(|b| b.session()) == Some(now)),
        "the old session was never acknowledged at the new address"
    );
}

// ---- Death and fencing ----

#[test]
fn a_dead_device_is_replaced_and_stops_when_it_hears_so() {
    let mut lab = Lab::new(2, |c| c.fencing = false);
    lab.run(100);
    partition(&mut lab, 0);
    lab.run(600);
    assert_eq!(
        lab.ac_events_where(
            |e| matches!(e, ControllerEvent::DeviceFailed { device, .. } if device.0 == 0)
        )
        .len(),
        1
    );
    assert_eq!(completed_to(&lab, 0), [DeviceId(1)]);
    // Without fencing the partitioned device still runs its copy…
    assert!(lab.device(0).running().any(|c| c == "comp0"));
    // …until its next HELLO reaches the AC, which answers "replaced".
    lab.clear_filter();
    lab.run(300);
    let stops = lab.device_events_where(0, |e| {
        matches!(
            e,
            DeviceEvent::Stop {
                reason: StopReason::Replaced,
                ..
            }
        )
    });
    assert_eq!(stops.len(), 1);
    assert!(lab.ac().stats().replaced >= 1);
    // It joins again as a new incarnation, without the computation that moved.
    assert!(lab.device(0).running().next().is_none());
    assert_eq!(
        lab.ac().placement(comp(0)),
        Some(Placement::Running(DeviceId(1)))
    );
}

#[test]
fn a_death_is_declared_on_the_dead_grid_never_before_the_timer_expires() {
    for grid_ms in [0, 64] {
        let mut lab = Lab::new(2, |c| {
            c.dead.min = Duration::from_millis(100);
            c.dead_grid = Duration::from_millis(grid_ms);
        });
        lab.run(100);
        let dead_ms = granted_dead_ms(&lab);
        partition(&mut lab, 0);
        lab.run(2 * dead_ms);
        let failed = lab.ac_events_where(|e| matches!(e, ControllerEvent::DeviceFailed { .. }));
        let [(_, ControllerEvent::DeviceFailed { last_hello, at, .. })] = failed[..] else {
            panic!("{failed:?}");
        };
        let expires = last_hello.as_micros() + dead_ms * 1000;
        let (at, grid) = (at.as_micros(), grid_ms * 1000);
        if grid == 0 {
            assert_eq!(at, expires);
        } else {
            assert!(at >= expires && at < expires + grid, "{at} for {expires}");
            assert_eq!(at % grid, 0, "on the grid");
        }
    }
}

#[test]
fn a_hello_read_after_the_timer_expired_but_before_the_check_keeps_the_session() {
    const GRID_MS: u64 = 64;
    let mut lab = Lab::new(1, |c| {
        c.dead.min = Duration::from_millis(100);
        c.dead_grid = Duration::from_millis(GRID_MS);
    });
    lab.run(100);
    let id = session(&lab, 0);
    let dead_ms = granted_dead_ms(&lab);
    // The device falls silent; HELLOs in its name come from here, at chosen times.
    lab.crash(0);
    let hello = |seq| {
        encode(&Bottle::Hello(Hello {
            session: id,
            seq,
            state: None,
        }))
    };
    // A HELLO at a time whose dead timer expires well inside a period of the grid.
    while !(16..48).contains(&((lab.now.as_millis() + dead_ms) % GRID_MS)) {
        lab.run(1);
    }
    lab.inject_to_ac(link(0), &hello(1_000)).unwrap();
    let expires = lab.now.as_millis() + dead_ms;
    let check = expires.div_ceil(GRID_MS) * GRID_MS;
    assert!(check > expires + 1);
    // Expired a millisecond ago, not yet checked: the next HELLO still counts.
    lab.run(dead_ms + 1);
    lab.inject_to_ac(link(0), &hello(1_001)).unwrap();
    lab.run(check - lab.now.as_millis() + 1);
    let failed =
        |lab: &Lab| lab.ac_events_where(|e| matches!(e, ControllerEvent::DeviceFailed { .. }));
    assert!(failed(&lab).is_empty(), "{:?}", failed(&lab));
    // With nothing after it, the session dies a dead interval after that HELLO.
    lab.run(dead_ms + GRID_MS);
    let dead = failed(&lab);
    assert_eq!(dead.len(), 1);
    assert!(dead[0].0.as_millis() >= expires + 1 + dead_ms);
}

#[test]
fn fencing_stops_the_computation_before_the_ac_moves_it() {
    let mut lab = Lab::new(2, |_| {});
    lab.run(100);
    partition(&mut lab, 0);
    lab.run(600);
    let fenced = lab.device_events_where(0, |e| {
        matches!(
            e,
            DeviceEvent::Stop {
                reason: StopReason::Fenced,
                ..
            }
        )
    });
    let failed = lab.ac_events_where(
        |e| matches!(e, ControllerEvent::DeviceFailed { device, .. } if device.0 == 0),
    );
    let started = lab.ac_events_where(|e| matches!(e, ControllerEvent::MigrationStarted { .. }));
    assert_eq!((fenced.len(), failed.len()), (1, 1));
    assert!(
        fenced[0].0 < failed[0].0,
        "fenced at {:?}, declared dead at {:?}",
        fenced[0].0,
        failed[0].0
    );
    assert!(fenced[0].0 < started[0].0);
}

#[test]
fn a_device_with_the_shortest_dead_interval_survives_one_lost_hello() {
    // HELLO every 100 ms, dead after 300 ms: the lease must outlive one lost HELLO and the
    // round trip of the next one.
    let mut lab = Lab::new(1, |_| {});
    lab.run(1_000);
    let mut lost = 0;
    let l0 = link(0);
    lab.set_filter(move |p| {
        if p.from == l0 && p.kind() == "hello" && lost == 0 {
            lost += 1;
            return Verdict::Drop;
        }
        Verdict::Deliver
    });
    lab.run(1_000);
    assert_eq!(lab.sent("hello").len() - lab.sent("hello_ack").len(), 1);
    let stops = lab.device_events_where(0, |e| matches!(e, DeviceEvent::Stop { .. }));
    assert!(stops.is_empty(), "{stops:?}");
    assert_eq!(
        lab.ac_events_where(|e| matches!(e, ControllerEvent::DeviceJoined { .. }))
            .len(),
        1
    );
}

#[test]
fn hello_and_state_from_a_replaced_session_change_nothing() {
    let mut lab = Lab::new(2, |_| {});
    lab.run(100);
    let now = lab.now;
    lab.device(0)
        .set_state(now, "comp0", b"before death")
        .unwrap();
    lab.run(200);
    let dead = session(&lab, 0);
    lab.crash(0);
    lab.run(600);
    assert_eq!(completed_to(&lab, 0), [DeviceId(1)]);
    let before = lab.ac().snapshot();
    let stats = *lab.ac().stats();
    let hello = encode(&Bottle::Hello(Hello {
        session: dead,
        seq: 9,
        state: None,
    }));
    let chunk = StateChunk {
        handle: 0,
        version: 99,
        total_len: 5,
        index: 0,
        data: b"after",
    };
    let state = encode(&Bottle::State(StateBottle {
        session: dead,
        chunk,
    }));
    assert_eq!(
        lab.inject_to_ac(link(0), &hello),
        Err(pcxses_core::InputError::Replaced)
    );
    lab.run(60);
    assert_eq!(
        lab.inject_to_ac(link(0), &state),
        Err(pcxses_core::InputError::Replaced)
    );
    assert_eq!(lab.ac().snapshot(), before);
    assert_eq!(lab.ac().stats().replaced, stats.replaced + 2);
    assert_eq!(lab.ac().lkgs(comp(0)).unwrap().0, b"before death");
    let replaced: Vec<_> = lab
        .sent("reject")
        .into_iter()
        .filter(|p| p.to == link(0))
        .collect();
    assert!(
        !replaced.is_empty(),
        "the stale device is told it was replaced"
    );
}

// ---- RECOVERY ----

#[test]
fn a_repeated_morph_ack_is_a_duplicate_and_a_made_up_one_is_refused() {
    let mut lab = Lab::new(2, |_| {});
    lab.run(100);
    lab.crash(0);
    lab.run(1_000);
    assert_eq!(completed_to(&lab, 0), [DeviceId(1)]);
    let ack = lab.sent("morph_ack").pop().expect("the target's MORPH ack");
    let duplicates = lab.ac().stats().duplicate;
    assert_eq!(lab.inject_to_ac(link(1), &ack.bytes), Ok(()));
    assert_eq!(lab.ac().stats().duplicate, duplicates + 1);
    let Some(Bottle::MorphAck(a)) = ack.bottle() else {
        panic!("not a MORPH ack");
    };
    let made_up = encode(&Bottle::MorphAck(MorphAck {
        morph: a.morph + 100,
        ..a
    }));
    assert!(matches!(
        lab.inject_to_ac(link(1), &made_up),
        Err(InputError::OutOfPhase(_))
    ));
    assert_eq!(
        lab.ac().placement(comp(0)),
        Some(Placement::Running(DeviceId(1)))
    );
}

#[test]
fn the_target_restores_exactly_the_acknowledged_state() {
    let mut lab = Lab::new(2, |_| {});
    lab.run(100);
    for k in 1..=5u8 {
        let now = lab.now;
        lab.device(0).set_state(now, "comp0", &[k; 100]).unwrap();
        lab.run(150);
    }
    lab.crash(0);
    lab.run(600);
    let installs = lab.device_events_where(1, |e| matches!(e, DeviceEvent::Install(_)));
    let DeviceEvent::Install(inst) = &installs[0].1 else {
        unreachable!()
    };
    assert_eq!(inst.lkgs(), [5u8; 100]);
    assert_eq!(inst.objects[0].len, 3000);
    let (_, code) = inst.objects().next().unwrap();
    assert_eq!(code.len(), 3000);
    // One allocation holds it all: the stream as it arrived, objects then state.
    assert_eq!(inst.stream.len(), 3100);
    assert_eq!(inst.replaces, "dev0");
    let done = lab.ac_events_where(|e| matches!(e, ControllerEvent::MigrationCompleted { .. }));
    let ControllerEvent::MigrationCompleted {
        detected_at,
        started_at,
        acked_at,
        stream_bytes,
        ..
    } = done[0].1
    else {
        unreachable!()
    };
    assert!(detected_at <= started_at && started_at < acked_at);
    assert_eq!(stream_bytes, 3100);
    assert!(lab.device(1).running().any(|c| c == "comp0"));
}

#[test]
fn the_priority_list_and_capabilities_choose_the_target() {
    let mut lab = Lab::new(4, |c| {
        c.computations[0].hosts = vec!["dev3".into(), "dev2".into()];
        c.computations[1].requires = vec!["fpu".into()];
        c.devices[2].capabilities = vec!["fpu".into()];
    });
    lab.run(100);
    lab.crash(0);
    lab.crash(1);
    lab.run(600);
    assert_eq!(
        completed_to(&lab, 0),
        [DeviceId(3)],
        "first in the priority list"
    );
    assert_eq!(
        completed_to(&lab, 1),
        [DeviceId(2)],
        "the only device with the capability"
    );
}

#[test]
fn the_least_loaded_policy_ignores_priority_lists() {
    for least_loaded in [false, true] {
        let mut lab = Lab::new(4, |c| {
            c.computations[2].hosts = vec!["dev1".into(), "dev3".into()]
        });
        if least_loaded {
            let ac = lab.ac.take().unwrap().with_policy(LeastLoadedPolicy);
            lab.ac = Some(ac);
        }
        lab.run(100);
        lab.crash(0);
        lab.run(600);
        // comp0 went to dev1 (equal loads, first by name): dev1 now runs two.
        assert_eq!(completed_to(&lab, 0), [DeviceId(1)]);
        lab.crash(2);
        lab.run(600);
        let want = if least_loaded {
            DeviceId(3)
        } else {
            DeviceId(1)
        };
        assert_eq!(
            completed_to(&lab, 2),
            [want],
            "least loaded: {least_loaded}"
        );
    }
}

#[test]
fn a_target_dying_mid_morph_passes_the_computation_to_the_next() {
    let mut lab = Lab::new(3, |c| {
        c.computations[0].hosts = vec!["dev1".into(), "dev2".into()]
    });
    lab.run(100);
    // dev1 acknowledges the MORPH header, then dies before the stream is through.
    let l1 = link(1);
    lab.drop_where(move |p| p.to == l1 && p.kind() == "object_chunk");
    lab.crash(0);
    lab.run(400);
    assert!(
        lab.ac_events_where(
            |e| matches!(e, ControllerEvent::MigrationStarted { to, .. } if to.0 == 1)
        )
        .len()
            == 1
    );
    lab.crash(1);
    lab.clear_filter();
    lab.run(800);
    let failed = lab.ac_events_where(|e| {
        matches!(e, ControllerEvent::MigrationFailed { to, reason: MigrationFailure::TargetDied, .. } if to.0 == 1)
    });
    assert_eq!(failed.len(), 1);
    assert_eq!(completed_to(&lab, 0), [DeviceId(2)]);
}

#[test]
fn a_tampered_chunk_is_refused_and_the_next_target_gets_it() {
    let mut lab = Lab::new(3, |c| {
        c.computations[0].hosts = vec!["dev1".into(), "dev2".into()]
    });
    lab.run(100);
    let l1 = link(1);
    lab.set_filter(move |p| {
        if p.to == l1 {
            if let Some(Bottle::ObjectChunk(c)) = p.bottle() {
                let mut data = c.data.to_vec();
                data[0] ^= 0x80;
                p.bytes = encode(&Bottle::ObjectChunk(pcxses_core::wire::ObjectChunk {
                    data: &data,
                    ..c
                }));
            }
        }
        Verdict::Deliver
    });
    lab.crash(0);
    lab.run(800);
    let refused = lab.device_events_where(1, |e| {
        matches!(
            e,
            DeviceEvent::MorphRefused {
                reason: MorphFailReason::DigestMismatch,
                ..
            }
        )
    });
    assert_eq!(refused.len(), 1);
    assert!(lab
        .device_events_where(1, |e| matches!(e, DeviceEvent::Install(_)))
        .is_empty());
    let failed = lab.ac_events_where(|e| {
        matches!(
            e,
            ControllerEvent::MigrationFailed {
                reason: MigrationFailure::Refused(MorphFailReason::DigestMismatch),
                ..
            }
        )
    });
    assert_eq!(failed.len(), 1);
    assert_eq!(completed_to(&lab, 0), [DeviceId(2)]);
}

#[test]
fn duplicated_morph_bottles_install_once() {
    let mut lab = Lab::new(2, |_| {});
    lab.run(100);
    lab.set_filter(|_| Verdict::Duplicate);
    lab.crash(0);
    lab.run(800);
    assert_eq!(
        lab.device_events_where(1, |e| matches!(e, DeviceEvent::Install(_)))
            .len(),
        1
    );
    assert_eq!(completed_to(&lab, 0), [DeviceId(1)]);
    assert!(lab.device(1).stats().duplicate > 0);
    // A MORPH header replayed later is answered from memory, not installed again.
    let header = lab.sent("morph").pop().unwrap();
    lab.clear_filter();
    lab.inject_to_device(1, &header.bytes).unwrap();
    lab.run(50);
    assert_eq!(
        lab.device_events_where(1, |e| matches!(e, DeviceEvent::Install(_)))
            .len(),
        1
    );
    assert_eq!(lab.device(1).running().filter(|c| *c == "comp0").count(), 1);
}

#[test]
fn a_stalled_morph_is_cancelled_before_the_next_target_is_tried() {
    let mut lab = Lab::new(3, |c| {
        c.computations[0].hosts = vec!["dev1".into(), "dev2".into()]
    });
    lab.run(100);
    // dev1 acknowledges the header, then nothing it says about the MORPH arrives: it
    // installs and runs the computation, but the AC sees the attempt stall.
    let l1 = link(1);
    let mut acks = 0;
    lab.set_filter(move |p| {
        if p.from == l1 && p.kind() == "chunk_ack" {
            acks += 1;
            if acks > 1 {
                return Verdict::Drop;
            }
        }
        if p.from == l1 && p.kind() == "morph_ack" {
            return Verdict::Drop;
        }
        Verdict::Deliver
    });
    lab.crash(0);
    lab.run(3_000);
    let cancels: Vec<_> = lab
        .sent("morph_fail")
        .into_iter()
        .filter(|p| p.from == pcxses_tests::sim::AC)
        .collect();
    assert!(!cancels.is_empty(), "the AC cancels the stalled MORPH");
    let failed = lab.ac_events_where(|e| {
        matches!(
            e,
            ControllerEvent::MigrationFailed {
                reason: MigrationFailure::TimedOut,
                ..
            }
        )
    });
    assert_eq!(failed.len(), 1);
    assert_eq!(completed_to(&lab, 0), [DeviceId(2)]);
    // The cancelled target stopped it before the next target got it.
    let stopped = lab.device_events_where(1, |e| {
        matches!(
            e,
            DeviceEvent::Stop {
                reason: StopReason::Cancelled,
                ..
            }
        )
    });
    let started = lab.ac_events_where(
        |e| matches!(e, ControllerEvent::MigrationStarted { to, .. } if to.0 == 2),
    );
    assert_eq!(stopped.len(), 1);
    assert!(stopped[0].0 <= started[0].0);
    assert!(!lab.device(1).running().any(|c| c == "comp0"));
}

#[test]
fn morphs_per_target_are_limited() {
    let mut lab = Lab::new(5, |c| {
        c.max_morphs_per_target = 1;
        for k in 0..4 {
            c.computations[k].hosts = vec!["dev4".into()];
        }
    });
    lab.run(100);
    for i in 0..4 {
        lab.crash(i);
    }
    lab.run(2_000);
    // Never two MORPHs towards dev4 at once: starts and ends alternate.
    let mut open = 0;
    for (_, e) in &lab.ac_events {
        match e {
            ControllerEvent::MigrationStarted { .. } => {
                open += 1;
                assert!(open <= 1, "two MORPHs towards one target");
            }
            ControllerEvent::MigrationCompleted { .. }
            | ControllerEvent::MigrationFailed { .. } => open -= 1,
            _ => {}
        }
    }
    for c in 0..4 {
        assert_eq!(completed_to(&lab, c), [DeviceId(4)]);
    }
}

#[test]
fn a_computation_failing_on_k_targets_in_a_row_is_quarantined_then_released() {
    let mut lab = Lab::new(5, |c| c.quarantine_after = 3);
    for i in 1..5 {
        lab.accept_installs[i] = false;
    }
    lab.run(100);
    lab.crash(0);
    lab.run(1_000);
    let failed = lab.ac_events_where(|e| matches!(e, ControllerEvent::MigrationFailed { .. }));
    assert_eq!(failed.len(), 3);
    assert_eq!(
        lab.ac_events_where(|e| matches!(
            e,
            ControllerEvent::Quarantined {
                failures: 3,
                reason: QuarantineReason::Failures,
                ..
            }
        ))
        .len(),
        1
    );
    assert_eq!(lab.ac().placement(comp(0)), Some(Placement::Quarantined));
    assert_eq!(lab.sent("morph").len(), 3, "no fourth target");
    lab.accept_installs = vec![true; 5];
    let now = lab.now;
    lab.ac_mut().release(now, comp(0)).unwrap();
    lab.run(1_000);
    assert!(matches!(
        lab.ac().placement(comp(0)),
        Some(Placement::Running(_))
    ));
    assert_eq!(completed_to(&lab, 0).len(), 1);
}

#[test]
fn an_orphaned_computation_moves_when_a_capable_device_joins() {
    let mut lab = Lab::new(2, |_| {});
    lab.crash(1);
    lab.run(100);
    lab.crash(0);
    lab.run(600);
    assert_eq!(
        lab.ac_events_where(|e| matches!(
            e,
            ControllerEvent::Orphaned {
                reason: OrphanReason::NoCapableDevice,
                ..
            }
        ))
        .len(),
        1
    );
    assert_eq!(lab.ac().placement(comp(0)), Some(Placement::Orphaned));
    lab.boot(1, |_| {});
    lab.run(300);
    assert_eq!(completed_to(&lab, 0), [DeviceId(1)]);
    assert!(lab.device(1).running().any(|c| c == "comp0"));
}

/// The one `Quarantined` event of a lab, with its reason and failure count.
fn quarantines(lab: &Lab) -> Vec<(QuarantineReason, u32)> {
    (lab.ac_events.iter())
        .filter_map(|(_, e)| match e {
            ControllerEvent::Quarantined {
                reason, failures, ..
            } => Some((*reason, *failures)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_computation_whose_object_the_repository_lacks_is_quarantined_saying_so() {
    let mut lab = Lab::new(2, |c| c.computations[0].objects[0].id = "absent.bin".into());
    lab.run(100);
    lab.crash(0);
    lab.run(1_000);
    assert_eq!(quarantines(&lab), [(QuarantineReason::MissingObject, 0)]);
    assert_eq!(lab.sent("morph").len(), 0);
}

#[test]
fn a_computation_too_large_for_a_morph_is_quarantined_saying_so() {
    // Its 3,000-byte object exceeds the transfer limit.
    let mut lab = Lab::new(2, |c| {
        c.limits.max_transfer = 1_000;
        c.limits.max_state = 1_000;
    });
    lab.run(100);
    lab.crash(0);
    lab.run(1_000);
    assert_eq!(quarantines(&lab), [(QuarantineReason::TooLarge, 0)]);
    assert_eq!(lab.sent("morph").len(), 0);
}

// ---- GOODBYE ----

#[test]
fn a_device_that_says_good_bye_is_never_recovered() {
    let mut lab = Lab::new(2, |_| {});
    lab.run(100);
    let now = lab.now;
    lab.device(0).leave(now);
    lab.run(2_000);
    assert_eq!(
        lab.device_events_where(0, |e| matches!(
            e,
            DeviceEvent::Stop {
                reason: StopReason::Left,
                ..
            }
        ))
        .len(),
        1
    );
    assert_eq!(
        lab.device_events_where(0, |e| matches!(e, DeviceEvent::Left))
            .len(),
        1
    );
    assert_eq!(
        lab.ac_events_where(|e| matches!(e, ControllerEvent::DeviceLeft { .. }))
            .len(),
        1
    );
    assert!(lab
        .ac_events_where(|e| matches!(
            e,
            ControllerEvent::DeviceFailed { .. } | ControllerEvent::MigrationStarted { .. }
        ))
        .is_empty());
    assert_eq!(lab.ac().placement(comp(0)), Some(Placement::Stopped));
}

#[test]
fn a_device_leaving_before_its_join_is_acknowledged_still_says_good_bye() {
    let mut lab = Lab::new(2, |_| {});
    // The AC opens dev0's session, but its GOOD_MORNING ack is lost.
    let l0 = link(0);
    let mut dropped = false;
    lab.set_filter(move |p| {
        if p.to == l0 && p.kind() == "good_morning_ack" && !dropped {
            dropped = true;
            return Verdict::Drop;
        }
        Verdict::Deliver
    });
    lab.run(5);
    assert!(lab.ac().session_of(DeviceId(0)).is_some());
    assert!(lab.device(0).session().is_none());
    let now = lab.now;
    lab.device(0).leave(now);
    lab.run(2_000);
    assert_eq!(
        lab.ac_events_where(
            |e| matches!(e, ControllerEvent::DeviceLeft { device, .. } if device.0 == 0)
        )
        .len(),
        1
    );
    assert!(lab
        .ac_events_where(|e| matches!(
            e,
            ControllerEvent::DeviceFailed { .. } | ControllerEvent::MigrationStarted { .. }
        ))
        .is_empty());
    assert_eq!(
        lab.device_events_where(0, |e| matches!(e, DeviceEvent::Left))
            .len(),
        1
    );
    assert!(lab
        .device_events_where(0, |e| matches!(e, DeviceEvent::Joined { .. }))
        .is_empty());
}

#[test]
fn the_ac_can_dismiss_a_device() {
    let mut lab = Lab::new(2, |_| {});
    lab.run(100);
    let now = lab.now;
    lab.ac_mut().dismiss(now, DeviceId(0)).unwrap();
    lab.run(1_000);
    assert_eq!(
        lab.device_events_where(0, |e| matches!(
            e,
            DeviceEvent::Stop {
                reason: StopReason::Dismissed,
                ..
            }
        ))
        .len(),
        1
    );
    assert_eq!(
        lab.device_events_where(0, |e| matches!(e, DeviceEvent::Left))
            .len(),
        1
    );
    assert!(lab
        .ac_events_where(|e| matches!(e, ControllerEvent::MigrationStarted { .. }))
        .is_empty());
    assert_eq!(lab.ac().placement(comp(0)), Some(Placement::Stopped));
    assert!(!lab.sent("good_bye_ack").is_empty());
}

// ---- Snapshot ----

#[test]
fn a_restored_ac_keeps_sessions_and_lkgs_and_declares_no_one_dead_for_its_downtime() {
    let mut lab = Lab::new(3, |c| c.restart_grace = Duration::from_secs(1));
    lab.run(100);
    let now = lab.now;
    lab.device(2)
        .set_state(now, "comp2", b"kept across restarts")
        .unwrap();
    lab.run(200);
    let sessions: Vec<_> = (0..3).map(|i| session(&lab, i)).collect();
    let snapshot = lab.ac.take().unwrap().snapshot();
    // Down for five dead intervals; devices fence meanwhile, which is fine.
    lab.run(1_500);
    let now = lab.now;
    lab.restore_ac(&snapshot, []);
    lab.run(300);
    assert!(lab
        .ac_events_where(|e| matches!(e, ControllerEvent::DeviceFailed { .. }))
        .is_empty());
    assert_eq!(lab.ac().lkgs(comp(2)).unwrap().0, b"kept across restarts");
    for (i, &before) in sessions.iter().enumerate() {
        // Fenced devices join again; the others keep their session.
        let s = session(&lab, i);
        assert!(s == before || lab.device(i).session() == Some(s));
        assert_eq!(
            lab.ac().placement(comp(i as u32)),
            Some(Placement::Running(DeviceId(i as u32)))
        );
    }
    let corrupt = [&snapshot[..snapshot.len() / 2]].concat();
    let fresh = pcxses_core::Controller::new(lab.ac_config.clone(), lab.repo.clone(), now).unwrap();
    assert_eq!(
        fresh.restore(&corrupt, [], now).err(),
        Some(SnapshotError::Format)
    );
    // A controller that has served is not overwritten by a snapshot, nor is one with a
    // journal already, which would not be told of what the restore put in.
    let served = lab.ac.take().unwrap();
    assert_eq!(
        served.restore(&snapshot, [], now).err(),
        Some(SnapshotError::NotNew)
    );
    let fresh = pcxses_core::Controller::new(lab.ac_config.clone(), lab.repo.clone(), now).unwrap();
    let (journal, _) = MemoryJournal::start(&fresh, 1_000);
    let journaled = fresh.with_journal(Box::new(journal));
    assert_eq!(
        journaled.restore(&snapshot, [], now).err(),
        Some(SnapshotError::NotNew)
    );
}

#[test]
fn a_morph_in_flight_at_a_restart_is_cancelled_before_it_is_retried() {
    let mut lab = Lab::new(3, |c| {
        c.computations[0].hosts = vec!["dev1".into(), "dev2".into()]
    });
    lab.run(100);
    // Hold dev1's chunk acks so the MORPH is in flight when the AC stops.
    let l1 = link(1);
    lab.drop_where(move |p| p.from == l1 && p.kind() == "chunk_ack");
    lab.crash(0);
    lab.run(400);
    assert_eq!(lab.ac().placement(comp(0)), Some(Placement::Migrating));
    let snapshot = lab.ac.take().unwrap().snapshot();
    lab.clear_filter();
    lab.restore_ac(&snapshot, []);
    lab.run(2_000);
    let cancels = lab
        .sent("morph_fail")
        .into_iter()
        .filter(|p| p.from == pcxses_tests::sim::AC && p.to == l1)
        .count();
    assert!(cancels >= 1);
    let running: usize = (1..3)
        .map(|i| lab.device(i).running().filter(|c| *c == "comp0").count())
        .sum();
    assert_eq!(running, 1, "exactly one copy after the restart");
    assert!(matches!(
        lab.ac().placement(comp(0)),
        Some(Placement::Running(_))
    ));
}

// ---- Signed manifests ----

fn signer() -> pcxses_core::signing::CodeSigner {
    pcxses_core::signing::CodeSigner::from_secret([0x5a; 32])
}

fn key_of(signer: &pcxses_core::signing::CodeSigner) -> Option<pcxses_core::signing::CodeVerifier> {
    pcxses_core::signing::CodeVerifier::from_public(signer.public_key())
}

#[test]
fn a_target_with_another_key_refuses_and_the_next_target_installs() {
    let mut lab = Lab::new(3, |c| {
        c.computations[0].hosts = vec!["dev2".into(), "dev1".into()]
    });
    let ac = lab.ac.take().unwrap().with_code_signer(signer());
    lab.ac = Some(ac);
    lab.boot(1, |d| d.code_key = key_of(&signer()));
    let stranger = pcxses_core::signing::CodeSigner::from_secret([0x77; 32]);
    lab.boot(2, |d| d.code_key = key_of(&stranger));
    lab.run(100);
    lab.crash(0);
    lab.run(800);
    let refused = lab.device_events_where(2, |e| {
        matches!(
            e,
            DeviceEvent::MorphRefused {
                reason: MorphFailReason::BadSignature,
                ..
            }
        )
    });
    assert_eq!(refused.len(), 1);
    assert!(lab
        .device_events_where(2, |e| matches!(e, DeviceEvent::Install(_)))
        .is_empty());
    assert_eq!(completed_to(&lab, 0), [DeviceId(1)]);
    let header = lab.sent("morph").pop().unwrap();
    assert!(matches!(header.bottle(), Some(Bottle::Morph(m)) if m.signature.is_some()));
}

#[test]
fn an_unsigned_manifest_is_refused_by_a_provisioned_device() {
    let mut lab = Lab::new(2, |_| {});
    lab.boot(1, |d| d.code_key = key_of(&signer()));
    lab.run(100);
    lab.crash(0);
    lab.run(800);
    let refused = lab.device_events_where(1, |e| {
        matches!(
            e,
            DeviceEvent::MorphRefused {
                reason: MorphFailReason::BadSignature,
                ..
            }
        )
    });
    assert!(!refused.is_empty());
    assert!(lab
        .device_events_where(1, |e| matches!(e, DeviceEvent::Install(_)))
        .is_empty());
    assert!(!lab.device(1).running().any(|c| c == "comp0"));
}

/// The MORPH header `p` with another session and morph id, its signed manifest untouched.
fn readdressed(p: &pcxses_tests::lab::Packet, session: SessionId, morph: u32) -> Vec<u8> {
    let Some(Bottle::Morph(m)) = p.bottle() else {
        panic!("not a MORPH")
    };
    encode(&Bottle::Morph(pcxses_core::wire::Morph {
        session,
        morph,
        handle: m.handle + 10,
        ..m
    }))
}

#[test]
fn a_replayed_manifest_and_one_for_another_device_are_refused() {
    let mut lab = Lab::new(3, |c| c.computations[0].hosts = vec!["dev1".into()]);
    let ac = lab.ac.take().unwrap().with_code_signer(signer());
    lab.ac = Some(ac);
    lab.boot(1, |d| d.code_key = key_of(&signer()));
    lab.boot(2, |d| d.code_key = key_of(&signer()));
    lab.run(100);
    lab.crash(0);
    lab.run(800);
    assert_eq!(completed_to(&lab, 0), [DeviceId(1)]);
    let header = lab.sent("morph").pop().unwrap();
    // The same signed manifest again, as a new MORPH to dev1: its sequence number is old.
    let replay = readdressed(&header, session(&lab, 1), 1_000);
    lab.inject_to_device(1, &replay).unwrap();
    let stale = lab.device_events_where(1, |e| {
        matches!(
            e,
            DeviceEvent::MorphRefused {
                reason: MorphFailReason::StaleSequence,
                ..
            }
        )
    });
    assert_eq!(stale.len(), 1);
    // The same signed manifest delivered to dev2: it names dev1 and dev1's join nonce.
    let elsewhere = readdressed(&header, session(&lab, 2), 1_001);
    lab.inject_to_device(2, &elsewhere).unwrap();
    let wrong = lab.device_events_where(2, |e| {
        matches!(
            e,
            DeviceEvent::MorphRefused {
                reason: MorphFailReason::WrongTarget,
                ..
            }
        )
    });
    assert_eq!(wrong.len(), 1);
    // A bit flipped in the manifest breaks the signature.
    let Some(Bottle::Morph(m)) = header.bottle() else {
        unreachable!()
    };
    let mut manifest = m.manifest.to_vec();
    manifest[3] ^= 1;
    let forged = encode(&Bottle::Morph(pcxses_core::wire::Morph {
        session: session(&lab, 2),
        morph: 1_002,
        manifest: &manifest,
        ..m
    }));
    lab.inject_to_device(2, &forged).unwrap();
    let bad = lab.device_events_where(2, |e| {
        matches!(
            e,
            DeviceEvent::MorphRefused {
                reason: MorphFailReason::BadSignature,
                ..
            }
        )
    });
    assert_eq!(bad.len(), 1);
    for i in 1..3 {
        assert_eq!(
            lab.device(i).running().filter(|c| *c == "comp0").count(),
            usize::from(i == 1)
        );
    }
}

#[test]
fn morphs_are_paced_when_many_devices_fail_at_once() {
    // Two MORPH starts per second, one at a time: three devices die together.
    let mut lab = Lab::new(6, |c| {
        c.morphs_per_s = 2;
        c.morph_burst = 1;
    });
    lab.run(300);
    for i in 0..3 {
        lab.crash(i);
    }
    lab.run(3_000);
    let starts: Vec<Instant> = lab
        .ac_events_where(|e| matches!(e, ControllerEvent::MigrationStarted { .. }))
        .into_iter()
        .map(|(at, _)| at)
        .collect();
    let all = lab.ac_events_where(|e| {
        matches!(
            e,
            ControllerEvent::MigrationStarted { .. } | ControllerEvent::MigrationFailed { .. }
        )
    });
    assert_eq!(starts.len(), 3, "{all:?}");
    for pair in starts.windows(2) {
        let gap = pair[1].saturating_since(pair[0]);
        assert!(gap >= Duration::from_millis(500), "{starts:?}");
    }
    let done = lab.ac_events_where(|e| matches!(e, ControllerEvent::MigrationCompleted { .. }));
    assert_eq!(done.len(), 3);
    // No pace by default: the same three start together.
    let mut lab = Lab::new(6, |_| {});
    lab.run(300);
    for i in 0..3 {
        lab.crash(i);
    }
    lab.run(3_000);
    let starts = lab.ac_events_where(|e| matches!(e, ControllerEvent::MigrationStarted { .. }));
    assert_eq!(starts.len(), 3);
    assert!(starts[2].0.saturating_since(starts[0].0) < Duration::from_millis(50));
}
