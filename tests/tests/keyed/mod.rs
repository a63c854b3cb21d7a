//! Labs in pre-shared-key mode, shared by the tests of that mode.

// Each test file uses some of these.
#![allow(dead_code)]

use pcxses_core::psk::Psk;
use pcxses_core::{ControllerConfig, ControllerEvent, LinkId};
use pcxses_tests::lab::Lab;

/// Device `i`'s key.
pub fn key(i: usize) -> Psk {
    Psk([i as u8 + 1; 32])
}

/// `n` devices, each with its own key at the AC and on the device; `tweak` adjusts the
/// AC's configuration.
pub fn keyed_with(n: usize, tweak: impl FnOnce(&mut ControllerConfig)) -> Lab {
    let mut lab = Lab::new(n, |c| {
        for (i, d) in c.devices.iter_mut().enumerate() {
            d.psk = Some(key(i));
        }
        tweak(c);
    });
    for i in 0..n {
        lab.boot(i, |d| d.psk = Some(key(i)));
    }
    lab
}

/// `n` keyed devices with the lab's AC configuration.
pub fn keyed(n: usize) -> Lab {
    keyed_with(n, |_| {})
}

/// How many times device `device` joined.
pub fn joins(lab: &Lab, device: u32) -> usize {
    lab.ac_events_where(
        |e| matches!(e, ControllerEvent::DeviceJoined { device: d, .. } if d.0 == device),
    )
    .len()
}

/// Device `i`'s link.
pub fn link(i: usize) -> LinkId {
    LinkId(i as u64 + 1)
}
