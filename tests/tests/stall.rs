//! The AC's own stall: when it handles its input long after the deadline it asked for, the
//! HELLOs that arrived meanwhile are still unread, so no device may die for that time.

use std::time::Duration;

use pcxses_core::controller::{ComputationSpec, DeviceSpec};
use pcxses_core::{
    Controller, ControllerConfig, ControllerEvent, Device, DeviceConfig, Instant, LinkId,
    MemoryRepository, Output,
};

const DEV: LinkId = LinkId(1);

/// Drains `ac`: its transmits, and whether a device was declared dead or a stall noticed.
fn drain_ac(ac: &mut Controller, seen: &mut Vec<ControllerEvent>) -> (Vec<Vec<u8>>, Instant) {
    let mut out = Vec::new();
    loop {
        match ac.poll_output() {
            Output::Transmit(t) => out.push(t.bytes.to_vec()),
            Output::Event(e) => seen.push(e),
            Output::Timeout(at) => return (out, at),
        }
    }
}

fn drain_device(d: &mut Device) -> (Vec<Vec<u8>>, Instant) {
    let mut out = Vec::new();
    loop {
        match d.poll_output() {
            Output::Transmit(t) => out.push(t.bytes.to_vec()),
            Output::Event(_) => {}
            Output::Timeout(at) => return (out, at),
        }
    }
}

/// An AC configured as `tweak` says and its one device, HELLO every 100 ms, dead after
/// 300, both at time zero.
fn pair(tweak: impl FnOnce(&mut ControllerConfig)) -> (Controller, Device) {
    let mut repo = MemoryRepository::default();
    repo.insert("c0", vec![0; 100]);
    let mut config = ControllerConfig::new(
        1,
        vec![DeviceSpec::new("dev0", &["comp0"])],
        vec![ComputationSpec::new("comp0", "c0")],
    );
    tweak(&mut config);
    let start = Instant::from_millis(0);
    let ac = Controller::new(config, repo, start).unwrap();
    let mut dc = DeviceConfig::new("dev0", 9);
    dc.hello = Duration::from_millis(100);
    dc.dead = Duration::from_millis(300);
    (ac, Device::new(dc, start))
}

/// One AC and one device, HELLO every 100 ms, dead after 300: they run for a second, then
/// the AC stalls for two seconds while the device goes on sending, then the AC's runtime
/// fires its overdue timer before it reads the HELLOs that queued up. Returns the AC's
/// events.
fn stall(stall_grace_ms: u32) -> Vec<ControllerEvent> {
    let (mut ac, mut dev) = pair(|c| c.stall_grace = Duration::from_millis(stall_grace_ms.into()));
    let mut seen = Vec::new();
    let mut queued: Vec<Vec<u8>> = Vec::new();
    let (_, mut ac_at) = drain_ac(&mut ac, &mut seen);
    for ms in 0..4_000u64 {
        let now = Instant::from_millis(ms);
        dev.handle_timeout(now);
        let (to_ac, _) = drain_device(&mut dev);
        queued.extend(to_ac);
        let stalled = (1_000..3_000).contains(&ms);
        if stalled {
            continue;
        }
        // Timers first, then what arrived: the order that hurts after a stall.
        if ac_at <= now {
            ac.handle_timeout(now);
        }
        for bytes in queued.drain(..) {
            let _ = ac.handle_receive(now, DEV, &bytes, None);
        }
        let (to_dev, at) = drain_ac(&mut ac, &mut seen);
        ac_at = at;
        for bytes in to_dev {
            let _ = dev.handle_receive(now, &bytes);
        }
    }
    seen
}

fn died(events: &[ControllerEvent]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, ControllerEvent::DeviceFailed { .. }))
}

#[test]
fn a_stalled_ac_kills_no_device_for_the_hellos_it_had_not_read() {
    let events = stall(100);
    assert!(!died(&events), "{events:?}");
    let stalls: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, ControllerEvent::Stalled { .. }))
        .collect();
    assert_eq!(stalls.len(), 1, "{stalls:?}");
    assert!(
        // Counted from the last input the AC handled, before the stall began.
        matches!(stalls[0], ControllerEvent::Stalled { late, .. } if late.as_millis() >= 2_000)
    );
    // Without the guard, the same stall kills the device.
    assert!(died(&stall(u32::MAX)));
}

/// One AC and one device as in [`stall`], the device cut off at 1 s; from then on the AC's
/// runtime handles every timer `late_ms` after the deadline the AC asked for. Returns when
/// the AC declared the device dead, if it did within 20 s.
fn starved(late_ms: u64) -> Option<Instant> {
    let (mut ac, mut dev) = pair(|_| {});
    let mut seen = Vec::new();
    let (_, mut ac_at) = drain_ac(&mut ac, &mut seen);
    for ms in 0..20_000u64 {
        let now = Instant::from_millis(ms);
        let cut = ms >= 1_000;
        dev.handle_timeout(now);
        let (to_ac, _) = drain_device(&mut dev);
        let late = if cut { late_ms * 1000 } else { 0 };
        if ac_at.as_micros().saturating_add(late) <= now.as_micros() {
            ac.handle_timeout(now);
        }
        if !cut {
            for bytes in to_ac {
                let _ = ac.handle_receive(now, DEV, &bytes, None);
            }
        }
        let (to_dev, at) = drain_ac(&mut ac, &mut seen);
        ac_at = at;
        if !cut {
            for bytes in to_dev {
                let _ = dev.handle_receive(now, &bytes);
            }
        }
        if died(&seen) {
            return Some(now);
        }
    }
    None
}

#[test]
fn an_ac_late_for_every_timer_still_declares_a_silent_device_dead() {
    for late_ms in [101, 150, 400] {
        let dead_at = starved(late_ms).expect("declared dead");
        // Silent from 1 s, dead after 300 ms: each late wake gives it at most one more
        // lateness, and the first stall at most the time since the AC last handled
        // anything.
        assert!(
            dead_at.as_millis() < 1_000 + 300 + 4 * late_ms,
            "{late_ms}: {dead_at:?}"
        );
    }
}
