//! What the TCP adapter's tests share: the driver's fixtures, device agents, and peers that
//! connect and hold.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use pcxses_core::{ControllerEvent, Epoch, Output};
pub use pcxses_driver::testing::*;
use pcxses_transport_tcp::{
    listen, spawn_controller, spawn_device, ConnectionLimits, ControllerHandle, DeviceHandle, Dial,
};
use smol::channel::Receiver;
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpStream;
use smol::{Executor, Timer};

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
    let listener = listen(ex, loopback(), limits).unwrap();
    spawn_controller(ex, controller(&epoch), epoch, listener)
}

/// Starts `dev0` against the AC at `addr` and waits up to 10 s for the AC's
/// `DeviceJoined`; the agent runs as long as the handle is kept.
pub async fn join_dev0(
    ex: &Arc<Executor<'static>>,
    epoch: Epoch,
    addr: std::net::SocketAddr,
    events: &Receiver<ControllerEvent>,
) -> DeviceHandle {
    let agent = spawn_device(ex, device("dev0", 7, &epoch), epoch, Dial::new(addr));
    joined(events, 0).await;
    agent
}
