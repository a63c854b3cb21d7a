//! Datagrams received in batches: one system call (`recvmmsg` on Linux) fills up to
//! [`RECV_BATCH`] slots, which are then handed out one by one.

use std::io;
use std::net::{SocketAddr, UdpSocket};

use pcxses_core::MAX_BOTTLE_LEN;

/// Datagrams one system call receives, at most.
pub const RECV_BATCH: usize = 32;

/// Bytes of one slot: any UDP payload fits, so none is cut short.
const SLOT: usize = MAX_BOTTLE_LEN;

/// One received datagram: where it came from and how long it is.
#[derive(Clone, Copy, Debug)]
struct Received {
    /// `None` for a source that is no IP address (never, on a UDP socket).
    from: Option<SocketAddr>,
    len: usize,
}

/// Slots for [`RECV_BATCH`] datagrams, filled by one receive and handed out in order.
///
/// Its memory is fixed when it is made: `RECV_BATCH` slots of the largest datagram
/// (allocated zeroed, so that only the pages datagrams are written to become resident).
#[derive(Debug)]
pub(crate) struct Inbox {
    slots: Vec<u8>,
    received: [Received; RECV_BATCH],
    /// Datagrams in the slots.
    count: usize,
    /// The next slot to hand out.
    next: usize,
    /// The last receive found the socket's queue empty: receiving again before new input
    /// is awaited would find nothing.
    exhausted: bool,
}

impl Inbox {
    pub(crate) fn new() -> Inbox {
        Inbox {
            slots: vec![0u8; RECV_BATCH * SLOT],
            received: [Received { from: None, len: 0 }; RECV_BATCH],
            count: 0,
            next: 0,
            exhausted: false,
        }
    }

    /// Whether a received datagram waits to be handed out.
    pub(crate) fn pending(&self) -> bool {
        self.next < self.count
    }

    /// The socket may have input again (a new turn): the next [`Inbox::next`] receives.
    pub(crate) fn rearm(&mut self) {
        self.exhausted = false;
    }

    /// The next datagram, in the order the socket received them: its source (`None` when it
    /// is no IP address) and bytes. Receives a batch from `socket` when none is left,
    /// unless the last batch emptied the socket's queue since [`Inbox::rearm`]. `None` when
    /// nothing is waiting (or receiving failed: logged at debug).
    pub(crate) fn next(&mut self, socket: &UdpSocket) -> Option<(Option<SocketAddr>, &[u8])> {
        if !self.pending() {
            if self.exhausted {
                return None;
            }
            self.next = 0;
            self.count = 0;
            match receive(socket, &mut self.slots, &mut self.received) {
                Ok(count) => {
                    self.count = count;
                    // A batch that stopped short of its bound stopped at an empty queue.
                    self.exhausted = count < RECV_BATCH;
                }
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        tracing::debug!(error = %e, "receive failed");
                    }
                    self.exhausted = true;
                }
            }
            if !self.pending() {
                return None;
            }
        }
        let i = self.next;
        self.next += 1;
        let Received { from, len } = self.received[i];
        let start = i * SLOT;
        Some((from, &self.slots[start..start + len]))
    }
}

/// Receives up to [`RECV_BATCH`] datagrams into `slots` with one `recvmmsg`, noting each
/// one's source and length in `received`; returns how many.
#[cfg(target_os = "linux")]
fn receive(
    socket: &UdpSocket,
    slots: &mut [u8],
    received: &mut [Received; RECV_BATCH],
) -> io::Result<usize> {
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders, SockaddrStorage};

    // The headers hold raw pointers (they are not `Send`): made for each call, they never
    // outlive it.
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(RECV_BATCH, None);
    let mut chunks = slots.chunks_exact_mut(SLOT);
    let mut buffers: [[IoSliceMut<'_>; 1]; RECV_BATCH] =
        std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
    let messages = recvmmsg(
        socket.as_raw_fd(),
        &mut headers,
        buffers.iter_mut(),
        MsgFlags::empty(),
        None,
    )?;
    let mut count = 0;
    for (slot, message) in received.iter_mut().zip(messages) {
        *slot = Received {
            from: message.address.as_ref().and_then(socket_addr),
            len: message.bytes.min(SLOT),
        };
        count += 1;
    }
    Ok(count)
}

/// The IP address and port of a source, if it is one.
#[cfg(target_os = "linux")]
fn socket_addr(addr: &nix::sys::socket::SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    addr.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

/// Receives one datagram into the first slot, where `recvmmsg` is not available.
#[cfg(not(target_os = "linux"))]
fn receive(
    socket: &UdpSocket,
    slots: &mut [u8],
    received: &mut [Received; RECV_BATCH],
) -> io::Result<usize> {
    let (len, from) = socket.recv_from(&mut slots[..SLOT])?;
    received[0] = Received {
        from: Some(from),
        len,
    };
    Ok(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::bind_socket;

    #[test]
    fn a_burst_of_several_batches_comes_out_whole_and_in_order() {
        const BURST: usize = 3 * RECV_BATCH + 5;
        let ac = bind_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        let to = ac.get_ref().local_addr().unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..BURST {
            // Lengths vary, so that a slot's bytes are its own datagram's.
            let bytes = vec![i as u8; 1 + i % 7];
            peer.send_to(&bytes, to).unwrap();
        }
        let mut inbox = Inbox::new();
        let mut got = Vec::new();
        let mut largest_batch = 0;
        for _turn in 0..1_000 {
            if got.len() == BURST {
                break;
            }
            inbox.rearm();
            while let Some((from, bytes)) = inbox.next(ac.get_ref()) {
                assert_eq!(from, Some(peer.local_addr().unwrap()));
                got.push(bytes.to_vec());
                largest_batch = largest_batch.max(inbox.count);
            }
        }
        let sent: Vec<Vec<u8>> = (0..BURST).map(|i| vec![i as u8; 1 + i % 7]).collect();
        assert_eq!(got, sent);
        if cfg!(target_os = "linux") {
            // Loopback delivers at once: one system call fills every slot.
            assert_eq!(largest_batch, RECV_BATCH);
        }
        // Nothing left: the next turn finds the queue empty.
        inbox.rearm();
        assert!(inbox.next(ac.get_ref()).is_none());
    }
}
