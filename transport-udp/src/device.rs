//! A device agent on a UDP socket connected to the AC.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use pcxses_core::{Device, Epoch, TransmitKind, MAX_BOTTLE_LEN};
use pcxses_driver::{Connect, Connection, DeviceHandle, Frames, Opened, SendError};
use smol::{Async, Executor};

use crate::socket;

/// Connects a UDP socket to the AC at `ac` and drives `device` on it.
pub async fn spawn_device(
    ex: &Arc<Executor<'static>>,
    device: Device,
    epoch: Epoch,
    ac: SocketAddr,
) -> io::Result<DeviceHandle> {
    let local: SocketAddr = if ac.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
        .parse()
        .expect("literal");
    let socket = socket::bind(local)?;
    socket.get_ref().connect(ac)?;
    let connected = Connected {
        socket: Arc::new(socket),
        ac,
    };
    Ok(pcxses_driver::spawn_device(ex, device, epoch, connected))
}

/// The socket connected to the AC: the device's one "connection", open from the start and
/// never closed.
#[derive(Clone)]
struct Connected {
    socket: Arc<Async<UdpSocket>>,
    ac: SocketAddr,
}

impl Connection for Connected {
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

impl Connect for Connected {
    type Connection = Connected;

    fn ac(&self) -> SocketAddr {
        self.ac
    }

    async fn connect(&self, frames: &Frames) -> io::Result<Opened<Connected>> {
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
