//! The AC on one UDP socket: datagrams as the driver's input, their source addresses as
//! links.

use std::io;
use std::net::{SocketAddr, UdpSocket};

use pcxses_core::{LinkId, Transmit, MAX_BOTTLE_LEN};
use pcxses_driver::{Inputs, Port, BATCH};
use smol::Async;

use crate::link::Links;
use crate::socket;

/// IPv6 peers an AC has link ids for at once, by default.
pub const V6_LINKS: usize = 65_536;

/// Binds the AC's socket to `addr`, with room for `v6_links` IPv6 peers ([`Links`];
/// [`V6_LINKS`] by default). Run the AC on it with [`spawn_controller`](crate::spawn_controller).
pub fn bind(addr: SocketAddr, v6_links: usize) -> io::Result<AcSocket> {
    let socket = socket::bind_socket(addr)?;
    let local_addr = socket.get_ref().local_addr()?;
    Ok(AcSocket {
        socket,
        local_addr,
        links: Links::new(v6_links),
        buf: vec![0u8; MAX_BOTTLE_LEN],
        refused: Vec::with_capacity(BATCH),
    })
}

/// The AC's socket and the links of its peers: the [`Port`] an AC serves every device
/// on, one bottle per datagram.
#[derive(Debug)]
pub struct AcSocket {
    socket: Async<UdpSocket>,
    local_addr: SocketAddr,
    links: Links,
    buf: Vec<u8>,
    /// Links of refused datagrams, released once what the controller queued is sent.
    refused: Vec<LinkId>,
}

impl Port for AcSocket {
    fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    async fn ready(&mut self) {
        if let Err(e) = self.socket.readable().await {
            tracing::debug!(error = %e, "receive failed");
        }
    }

    fn receive(&mut self, inputs: &mut Inputs<'_>) -> bool {
        let (n, from) = match self.socket.get_ref().recv_from(&mut self.buf) {
            Ok(received) => received,
            Err(e) => {
                if e.kind() != io::ErrorKind::WouldBlock {
                    tracing::debug!(error = %e, "receive failed");
                }
                return false;
            }
        };
        let link = self.links.link(from);
        match inputs.bottle(link, Some(from), &self.buf[..n], None) {
            Ok(()) => self.links.accepted(link),
            Err(_) => self.refused.push(link),
        }
        true
    }

    fn peer_addr(&self, link: LinkId) -> Option<SocketAddr> {
        self.links.addr(link)
    }

    async fn send(&mut self, t: Transmit<'_>) {
        if let Some(addr) = self.links.addr(t.to) {
            if let Err(e) = socket::send_to(&self.socket, t.bytes, addr).await {
                tracing::debug!(%addr, error = %e, "send failed");
            }
        }
    }

    fn drained(&mut self) {
        for link in self.refused.drain(..) {
            self.links.release_unaccepted(link);
        }
    }
}
