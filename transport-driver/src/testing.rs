//! Fixtures for the tests of adapters and of the driver: an AC that knows two devices, a
//! device with short intervals, waiting, within a deadline, for what they report, and one
//! turn of an AC over a port.

use std::net::SocketAddr;
use std::time::Duration;

use pcxses_core::controller::{ComputationSpec, DeviceSpec};
use pcxses_core::{
    Controller, ControllerConfig, ControllerEvent, Device, DeviceConfig, Epoch, Instant,
    MemoryRepository,
};
use smol::channel::{bounded, Receiver};
use smol::future::FutureExt;
use smol::Timer;

use crate::controller::{receive_batch, send_all};
use crate::drain::Events;
use crate::refusal::{Inputs, Refusals};
use crate::Port;

/// Any free port of 127.0.0.1, to serve on.
pub fn loopback() -> SocketAddr {
    ([127, 0, 0, 1], 0).into()
}

/// An AC that knows `dev0` (running `comp0`) and `dev1` (running `comp1`), each
/// computation 100 bytes of object code.
pub fn controller(epoch: &Epoch) -> Controller {
    controller_with(epoch, 100, |_| {})
}

/// An AC that knows `dev0` (running `comp0`) and `dev1` (running `comp1`), each
/// computation `code_len` bytes of object code, its settings changed by `tune`.
pub fn controller_with(
    epoch: &Epoch,
    code_len: usize,
    tune: impl FnOnce(&mut ControllerConfig),
) -> Controller {
    let devices = vec![
        DeviceSpec::new("dev0", &["comp0"]),
        DeviceSpec::new("dev1", &["comp1"]),
    ];
    let comps = vec![
        ComputationSpec::new("comp0", "comp0.bin"),
        ComputationSpec::new("comp1", "comp1.bin"),
    ];
    let mut repo = MemoryRepository::default();
    repo.insert("comp0.bin", vec![0xc0; code_len]);
    repo.insert("comp1.bin", vec![0xc1; code_len]);
    let mut config = ControllerConfig::new(11, devices, comps);
    tune(&mut config);
    Controller::new(config, repo, epoch.now()).expect("valid configuration")
}

/// The settings of device `name` with `seed`: HELLO every 100 ms, dead after 500 ms,
/// join retries from 20 ms to 200 ms.
pub fn device_config(name: &str, seed: u64) -> DeviceConfig {
    let mut config = DeviceConfig::new(name, seed);
    config.hello = Duration::from_millis(100);
    config.dead = Duration::from_millis(500);
    config.join_retry = Duration::from_millis(20);
    config.join_retry_max = Duration::from_millis(200);
    config
}

/// Device `name` with `seed` and the settings of [`device_config`].
pub fn device(name: &str, seed: u64, epoch: &Epoch) -> Device {
    Device::new(device_config(name, seed), epoch.now())
}

/// Waits up to `secs` for an AC event matching `f`, passing over the others; panics,
/// naming `what`, when none comes.
pub async fn ac_event(
    events: &Receiver<ControllerEvent>,
    secs: u64,
    what: &str,
    f: impl Fn(&ControllerEvent) -> bool,
) -> ControllerEvent {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let e = async { events.recv().await.ok() }
            .or(async {
                Timer::at(deadline).await;
                None
            })
            .await
            .unwrap_or_else(|| panic!("timed out waiting for {what}"));
        if f(&e) {
            return e;
        }
    }
}

/// Waits up to 10 s for device number `device` to join; panics if any device is declared
/// dead meanwhile.
pub async fn joined(events: &Receiver<ControllerEvent>, device: u32) {
    ac_event(
        events,
        10,
        &format!("device {device} to join"),
        |e| match e {
            ControllerEvent::DeviceFailed { .. } => panic!("{e:?}"),
            ControllerEvent::DeviceJoined { device: d, .. } => d.0 == device,
            _ => false,
        },
    )
    .await;
}

/// Waits up to `secs` for `f` to hold, checking every 10 ms; panics, naming `what`, when
/// it does not.
pub async fn eventually(secs: u64, what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        Timer::after(Duration::from_millis(10)).await;
    }
}

/// Asserts that none of the AC events waiting in `events` declares a device dead.
pub fn assert_no_device_failed(events: &Receiver<ControllerEvent>) {
    while let Ok(e) = events.try_recv() {
        assert!(!matches!(e, ControllerEvent::DeviceFailed { .. }), "{e:?}");
    }
}

/// One turn of an AC's run loop over `port` at `now`, without waiting for input: what
/// `port` has waiting (at most [`BATCH`](crate::BATCH) inputs) is handed to `ac`, then what
/// `ac` queued is sent, as the run loop does; events and refusals go nowhere. For tests
/// that look at a port between turns. Returns whether input was left waiting.
pub async fn turn<P: Port>(ac: &mut Controller, port: &mut P, now: Instant) -> bool {
    let (refusals, _) = bounded(1);
    let mut inputs = Inputs {
        ac: &mut *ac,
        now,
        refusals: &mut Refusals::new(refusals),
    };
    let more = receive_batch(port, &mut inputs);
    let (events, _) = bounded(1);
    send_all(ac, port, &mut Events::dropping(events)).await;
    more
}
