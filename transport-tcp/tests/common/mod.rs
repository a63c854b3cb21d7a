//! What the TCP adapter's tests share: an AC with two known devices, device agents, and
//! peers that connect and hold.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use pcxses_core::controller::{ComputationSpec, DeviceSpec};
use pcxses_core::{
    Controller, ControllerConfig, ControllerEvent, Device, DeviceConfig, Epoch, MemoryRepository,
    Output,
};
use pcxses_transport_tcp::{
    spawn_controller_with, spawn_device, ConnectionLimits, ControllerHandle, DeviceHandle,
};
use smol::channel::Receiver;
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use smol::{Executor, Timer};

/// An AC that knows `dev0` and `dev1`.
pub fn controller(epoch: &Epoch) -> Controller {
    let devices = vec![
        DeviceSpec::new("dev0", &["comp0"]),
        DeviceSpec::new("dev1", &["comp1"]),
    ];
    let comps = vec![
        ComputationSpec::new("comp0", "comp0.bin"),
        ComputationSpec::new("comp1", "comp1.bin"),
    ];
    let mut repo = MemoryRepository::default();
    repo.insert("comp0.bin", vec![0xc0; 100]);
    repo.insert("comp1.bin", vec![0xc1; 100]);
    let config = ControllerConfig::new(11, devices, comps);
    Controller::new(config, repo, epoch.now()).expect("valid configuration")
}

/// Device `name`: HELLO every 100 ms, dead after 500 ms.
pub fn device(name: &str, seed: u64, epoch: &Epoch) -> Device {
    let mut config = DeviceConfig::new(name, seed);
    config.hello = Duration::from_millis(100);
    config.dead = Duration::from_millis(500);
    config.join_retry = Duration::from_millis(20);
    config.join_retry_max = Duration::from_millis(200);
    Device::new(config, epoch.now())
}

/// The first bottle device `name` sends: its GOOD_MORNING.
pub fn good_morning(name: &str, epoch: &Epoch) -> Vec<u8> {
    let mut d = device(name, 1, epoch);
    d.handle_timeout(epoch.now());
    loop {
        match d.poll_output() {
            Output::Transmit(t) => return t.bytes.to_vec(),
            Output::Event(_) => {}
            Output::Timeout(_) => panic!("the device sent no GOOD_MORNING"),
        }
    }
}

/// Waits up to `secs` for an AC event matching `f`.
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

/// Waits up to `secs` for `f` to hold, checking every 10 ms.
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

/// The start of a frame that announces 16 bytes, and one of them: a peer that holds its
/// connection with a frame it never finishes.
pub const HEADER_AND_ONE_BYTE: [u8; 2] = [0x10, 0x01];

/// Connects to `addr` and sends `bytes`.
pub async fn hold(addr: std::net::SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    s
}

/// Whether the AC closed `s` within `secs` (reading and discarding what it sent before).
pub async fn closed_by_peer(s: &mut TcpStream, secs: u64) -> bool {
    let mut buf = [0u8; 1024];
    let read_to_end = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    };
    read_to_end
        .or(async {
            Timer::after(Duration::from_secs(secs)).await;
            false
        })
        .await
}

/// Connection limits of `max_connections`, with the given first-bottle deadline and idle
/// timeout in milliseconds.
pub fn limits(max_connections: usize, first_bottle_ms: u64, idle_ms: u64) -> ConnectionLimits {
    ConnectionLimits {
        max_connections,
        first_bottle: Duration::from_millis(first_bottle_ms),
        idle: Duration::from_millis(idle_ms),
        ..ConnectionLimits::default()
    }
}

/// The AC of [`controller`] on a free port of 127.0.0.1, bounded by `limits`.
pub async fn spawn_ac(
    ex: &Arc<Executor<'static>>,
    epoch: Epoch,
    limits: ConnectionLimits,
) -> ControllerHandle {
    spawn_controller_with(
        ex,
        controller(&epoch),
        epoch,
        "127.0.0.1:0".parse().unwrap(),
        limits,
    )
    .await
    .unwrap()
}

/// Starts `dev0` against the AC at `addr` and waits up to 10 s for the AC's
/// `DeviceJoined`; the agent runs as long as the handle is kept.
pub async fn join_dev0(
    ex: &Arc<Executor<'static>>,
    epoch: Epoch,
    addr: std::net::SocketAddr,
    events: &Receiver<ControllerEvent>,
) -> DeviceHandle {
    let agent = spawn_device(ex, device("dev0", 7, &epoch), epoch, addr)
        .await
        .unwrap();
    ac_event(events, 10, "the device's join", |e| {
        matches!(e, ControllerEvent::DeviceJoined { .. })
    })
    .await;
    agent
}

/// Asserts that none of the AC events waiting in `events` declares a device dead.
pub fn assert_no_device_failed(events: &Receiver<ControllerEvent>) {
    while let Ok(e) = events.try_recv() {
        assert!(!matches!(e, ControllerEvent::DeviceFailed { .. }), "{e:?}");
    }
}
