//! What the TCP adapter's tests share: an AC with two known devices, device agents, and
//! peers that connect and hold.

#![allow(dead_code)]

use std::time::Duration;

use pcxses_core::controller::{ComputationSpec, DeviceSpec};
use pcxses_core::{
    Controller, ControllerConfig, ControllerEvent, Device, DeviceConfig, Epoch, Input,
    MemoryRepository, Output,
};
use smol::channel::Receiver;
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use smol::Timer;

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
    config.hello_ms = 100;
    config.dead_ms = 500;
    config.join_retry_ms = 20;
    config.join_retry_max_ms = 200;
    Device::new(config, epoch.now())
}

/// The first bottle device `name` sends: its GOOD_MORNING.
pub fn good_morning(name: &str, epoch: &Epoch) -> Vec<u8> {
    let mut d = device(name, 1, epoch);
    let _ = d.handle_input(Input::Timeout(epoch.now()));
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
