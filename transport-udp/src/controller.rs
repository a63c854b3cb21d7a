//! The AC on one UDP socket: datagrams as the driver's input, their source addresses as
//! links.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use pcxses_core::{Controller, Epoch, Instant, LinkId, Transmit, MAX_BOTTLE_LEN};
use pcxses_driver::{ControllerHandle, Port, BATCH};
use smol::{Async, Executor};

use crate::link::Links;
use crate::socket;

/// IPv6 peers an AC has link ids for at once, by default.
pub const V6_LINKS: usize = 65_536;

/// Binds `addr` and drives `controller` on it in a task of `ex`, with room for
/// [`V6_LINKS`] IPv6 peers.
pub async fn spawn_controller(
    ex: &Arc<Executor<'static>>,
    controller: Controller,
    epoch: Epoch,
    addr: SocketAddr,
) -> io::Result<ControllerHandle> {
    spawn_controller_with(ex, controller, epoch, addr, V6_LINKS).await
}

/// [`spawn_controller`] with room for `v6_links` IPv6 peers ([`Links`]).
pub async fn spawn_controller_with(
    ex: &Arc<Executor<'static>>,
    controller: Controller,
    epoch: Epoch,
    addr: SocketAddr,
    v6_links: usize,
) -> io::Result<ControllerHandle> {
    let socket = socket::bind(addr)?;
    let local_addr = socket.get_ref().local_addr()?;
    let port = Datagrams {
        socket,
        links: Links::new(v6_links),
        buf: vec![0u8; MAX_BOTTLE_LEN],
        refused: Vec::with_capacity(BATCH),
    };
    Ok(pcxses_driver::spawn_controller(
        ex, controller, epoch, local_addr, port,
    ))
}

/// The AC's socket and the links of its peers.
struct Datagrams {
    socket: Async<UdpSocket>,
    links: Links,
    buf: Vec<u8>,
    /// Links of refused datagrams, released once what the controller queued is sent.
    refused: Vec<LinkId>,
}

impl Port for Datagrams {
    async fn ready(&mut self) {
        if let Err(e) = self.socket.readable().await {
            tracing::debug!(error = %e, "receive failed");
        }
    }

    fn receive(&mut self, ac: &mut Controller, now: Instant) -> bool {
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
        match ac.handle_receive(now, link, &self.buf[..n], None) {
            Ok(()) => self.links.accepted(link),
            Err(e) => {
                tracing::trace!(%from, error = %e, "refused a datagram");
                self.refused.push(link);
            }
        }
        true
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
