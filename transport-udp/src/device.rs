//! The device's UDP socket, connected to the AC.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use pcxses_core::{TransmitKind, MAX_BOTTLE_LEN};
use pcxses_driver::{Connect, Connection, Frames, Opened, SendError};
use smol::Async;

use crate::socket;

/// A UDP socket connected to the AC at `ac`: run a device on it with
/// [`spawn_device`](crate::spawn_device).
pub fn connect(ac: SocketAddr) -> io::Result<DeviceSocket> {
    let local: SocketAddr = if ac.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
        .parse()
        .expect("literal");
    let socket = socket::bind_socket(local)?;
    socket.get_ref().connect(ac)?;
    Ok(DeviceSocket {
        socket: Arc::new(socket),
        ac,
    })
}

/// The device's socket connected to the AC: its one "connection", open from the start
/// and never closed.
#[derive(Clone, Debug)]
pub struct DeviceSocket {
    socket: Arc<Async<UdpSocket>>,
    ac: SocketAddr,
}

impl Connection for DeviceSocket {
    fn send(&self, _: TransmitKind, bottle: &[u8]) -> Result<(), SendError> {
        match self.socket.get_ref().send(bottle) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(SendError::Full),
            // An ICMP error from an AC that is not up yet: retries follow.
            Err(e) => {
                tracing::debug!(error = %e, "send failed");
                Ok(())
            }
        }
    }
}

impl Connect for DeviceSocket {
    type Connection = DeviceSocket;

    fn ac(&self) -> SocketAddr {
        self.ac
    }

    async fn connect(&self, frames: &Frames) -> io::Result<Opened<DeviceSocket>> {
        let reading = read(self.socket.clone(), frames.clone());
        Ok(Opened::new(self.clone(), reading))
    }
}

/// Delivers every datagram, one bottle each.
async fn read(socket: Arc<Async<UdpSocket>>, frames: Frames) {
    let mut buf = vec![0u8; MAX_BOTTLE_LEN];
    loop {
        match socket.recv(&mut buf).await {
            Ok(n) => {
                if !frames.deliver(buf[..n].to_vec()).await {
                    return;
                }
            }
            // An ICMP error from an AC that is not up yet: keep going, retries follow.
            Err(e) => {
                tracing::debug!(error = %e, "receive failed");
                smol::future::yield_now().await;
            }
        }
    }
}
