//! The AC on one UDP socket: datagrams as the driver's input, their source addresses as
//! links.

use std::io;
use std::net::{SocketAddr, UdpSocket};

use pcxses_core::{LinkId, Transmit};
use pcxses_driver::{Inputs, Port, BATCH};
use smol::Async;

use crate::inbox::Inbox;
use crate::link::Links;
use crate::outbox::Outbox;
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
        inbox: Inbox::new(),
        outbox: Outbox::new(),
        refused: Vec::with_capacity(BATCH),
    })
}

/// The AC's socket and the links of its peers: the [`Port`] an AC serves every device
/// on, one bottle per datagram. Datagrams are received and sent in batches, a system call
/// each ([`RECV_BATCH`](crate::RECV_BATCH), [`SEND_BATCH`](crate::SEND_BATCH)).
#[derive(Debug)]
pub struct AcSocket {
    socket: Async<UdpSocket>,
    local_addr: SocketAddr,
    links: Links,
    inbox: Inbox,
    outbox: Outbox,
    /// Links of refused datagrams, released once what the controller queued is sent.
    refused: Vec<LinkId>,
}

impl Port for AcSocket {
    fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    async fn ready(&mut self) {
        if self.inbox.pending() {
            return;
        }
        if let Err(e) = self.socket.readable().await {
            tracing::debug!(error = %e, "receive failed");
        }
    }

    fn turn(&mut self) {
        self.inbox.rearm();
    }

    fn receive(&mut self, inputs: &mut Inputs<'_>) -> bool {
        let Some((from, bytes)) = self.inbox.next(self.socket.get_ref()) else {
            return false;
        };
        // A source that is no IP address (never, on a UDP socket) cannot be answered.
        let Some(from) = from else {
            return true;
        };
        let link = self.links.link(from);
        match inputs.bottle(link, Some(from), bytes, None) {
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
            self.outbox.send(&self.socket, addr, t.bytes).await;
        }
    }

    async fn flush(&mut self) {
        self.outbox.flush(&self.socket).await;
    }

    fn drained(&mut self) {
        for link in self.refused.drain(..) {
            self.links.release_unaccepted(link);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pcxses_core::Epoch;
    use pcxses_driver::testing::{controller, turn};

    use super::*;
    use crate::RECV_BATCH;

    /// Turns `port` until `ac` has received `count` bottles (or a few seconds passed);
    /// returns the turns taken.
    async fn turn_until(
        ac: &mut pcxses_core::Controller,
        port: &mut AcSocket,
        epoch: Epoch,
        count: u64,
    ) -> usize {
        for turns in 1..=500 {
            turn(ac, port, epoch.now()).await;
            if ac.stats().received >= count {
                return turns;
            }
            smol::Timer::after(Duration::from_millis(10)).await;
        }
        panic!("{} of {count} bottles received", ac.stats().received);
    }

    #[test]
    fn a_burst_of_more_datagrams_than_one_batch_all_reach_the_controller() {
        const BURST: usize = 3 * RECV_BATCH + 5;
        smol::block_on(async {
            let epoch = Epoch::new();
            let mut ac = controller(&epoch);
            let mut port = bind("127.0.0.1:0".parse().unwrap(), V6_LINKS).unwrap();
            let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
            for i in 0..BURST {
                // Bottles that do not decode: counted, not answered.
                peer.send_to(&[0x01, i as u8], port.local_addr).unwrap();
            }
            turn_until(&mut ac, &mut port, epoch, BURST as u64).await;
            assert_eq!(ac.stats().received, BURST as u64);
            assert_eq!(ac.stats().malformed, BURST as u64);
        });
    }

    #[test]
    fn a_refused_datagram_releases_its_link_slot_once_its_answer_is_sent() {
        smol::block_on(async {
            let epoch = Epoch::new();
            let mut ac = controller(&epoch);
            let mut port = bind("[::1]:0".parse().unwrap(), 4).unwrap();
            let peer = UdpSocket::bind("[::1]:0").unwrap();
            peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            // An unknown protocol version: refused, and answered with a REJECT (no longer
            // than the refused bottle).
            peer.send_to(&[0xff; 64], port.local_addr).unwrap();
            turn_until(&mut ac, &mut port, epoch, 1).await;
            assert_eq!((ac.stats().bad_version, ac.stats().unanswered), (1, 0));
            assert_eq!(port.links.v6_len(), 0, "the slot is released");
            let mut answer = [0u8; 64];
            let (n, from) = peer.recv_from(&mut answer).unwrap();
            assert!(n > 0);
            assert_eq!(from, port.local_addr);
        });
    }
}
