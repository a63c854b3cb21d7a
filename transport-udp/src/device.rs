//! The device's UDP sockets, each connected to one of its area's ACs.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use pcxses_core::{TransmitKind, MAX_BOTTLE_LEN};
use pcxses_driver::{Acs, Connect, Connection, Frames, Opened, SendError};
use smol::Async;

use crate::socket;

/// How a device reaches its area's ACs over UDP: a socket of its own connected to the AC in
/// use, a new one for each AC it moves to. Run a device on it with
/// [`spawn_device`](crate::spawn_device).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dial {
    acs: Acs,
}

impl Dial {
    /// Datagrams to the AC at `acs`: one address, or the [`Acs`] of a leader and its
    /// standbys.
    pub fn new(acs: impl Into<Acs>) -> Dial {
        Dial { acs: acs.into() }
    }
}

/// The device's socket connected to one AC: its "connection", open from the start and
/// closed only when the device moves to another AC.
#[derive(Clone, Debug)]
pub struct DeviceSocket {
    socket: Arc<Async<UdpSocket>>,
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

impl Connect for Dial {
    type Connection = DeviceSocket;

    fn acs(&self) -> &Acs {
        &self.acs
    }

    async fn connect(&self, ac: SocketAddr, frames: &Frames) -> io::Result<Opened<DeviceSocket>> {
        let local: SocketAddr = if ac.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
            .parse()
            .expect("literal");
        let socket = socket::bind_socket(local)?;
        socket.get_ref().connect(ac)?;
        let socket = Arc::new(socket);
        let reading = read(socket.clone(), frames.clone());
        Ok(Opened::new(DeviceSocket { socket }, reading))
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
