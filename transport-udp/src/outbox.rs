//! Datagrams queued and sent in batches: one system call (`sendmmsg` on Linux) sends up to
//! [`SEND_BATCH`] of them, each to its own address.

use std::future::Future;
use std::io;
use std::net::{SocketAddr, UdpSocket};

use pcxses_core::MAX_BOTTLE_LEN;
use smol::Async;

/// Datagrams one system call sends, at most.
pub const SEND_BATCH: usize = 64;

/// Bytes the queued datagrams hold together, at most: room for the largest bottle and then
/// some.
const SEND_BYTES: usize = 2 * MAX_BOTTLE_LEN;

/// One queued datagram: where it goes, and where its bytes are in the outbox.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Queued {
    to: SocketAddr,
    start: usize,
    len: usize,
}

impl Queued {
    /// Its destination.
    pub(crate) fn to(&self) -> SocketAddr {
        self.to
    }

    /// Its bytes, in the outbox's `bytes`.
    pub(crate) fn bytes<'b>(&self, bytes: &'b [u8]) -> &'b [u8] {
        bytes
            .get(self.start..self.start + self.len)
            .unwrap_or_default()
    }
}

/// What the [`Outbox`] sends on: a socket that sends batches of datagrams (a trait, so that
/// tests can play the kernel).
pub(crate) trait Datagrams: Sync {
    /// Sends the datagrams of `batch` (their bytes in `bytes`) in order, without waiting,
    /// as many as the kernel takes now: how many it took, or the error of the first.
    fn send_batch(&self, batch: &[Queued], bytes: &[u8]) -> io::Result<usize>;

    /// Waits until the socket may take more.
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send;
}

impl Datagrams for Async<UdpSocket> {
    fn send_batch(&self, batch: &[Queued], bytes: &[u8]) -> io::Result<usize> {
        send_batch(self.get_ref(), batch, bytes)
    }

    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
        Async::writable(self)
    }
}

/// Datagrams waiting to be sent, in the order they were queued: at most [`SEND_BATCH`] of
/// them and `2 ×` [`MAX_BOTTLE_LEN`] bytes, in buffers allocated once.
#[derive(Debug)]
pub(crate) struct Outbox {
    bytes: Vec<u8>,
    queued: Vec<Queued>,
    /// Datagrams at the front of `queued` already sent (or dropped).
    sent: usize,
}

impl Outbox {
    pub(crate) fn new() -> Outbox {
        Outbox {
            bytes: Vec::with_capacity(SEND_BYTES),
            queued: Vec::with_capacity(SEND_BATCH),
            sent: 0,
        }
    }

    /// Queues `bytes` for `to`, sending what is queued first when there is no room. A
    /// datagram longer than any UDP payload is dropped (logged at debug).
    pub(crate) async fn send(&mut self, socket: &impl Datagrams, to: SocketAddr, bytes: &[u8]) {
        if bytes.len() > MAX_BOTTLE_LEN {
            tracing::debug!(%to, len = bytes.len(), "datagram too long: dropped");
            return;
        }
        if self.queued.len() == SEND_BATCH || self.bytes.len() + bytes.len() > SEND_BYTES {
            self.flush(socket).await;
        }
        self.queued.push(Queued {
            to,
            start: self.bytes.len(),
            len: bytes.len(),
        });
        self.bytes.extend_from_slice(bytes);
    }

    /// Sends everything queued, in order, a batch per system call: waits for room when the
    /// socket has none, goes on from where a batch stopped, and drops (logged at debug) a
    /// datagram the kernel refuses (too long, no route) rather than try it again.
    pub(crate) async fn flush(&mut self, socket: &impl Datagrams) {
        while self.sent < self.queued.len() {
            match socket.send_batch(&self.queued[self.sent..], &self.bytes) {
                Ok(n) if n > 0 => self.sent = (self.sent + n).min(self.queued.len()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(_) => self.wait(socket).await,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait(socket).await,
                Err(e) => {
                    let to = self.queued[self.sent].to;
                    tracing::debug!(%to, error = %e, "send failed: datagram dropped");
                    self.sent += 1;
                }
            }
        }
        self.queued.clear();
        self.bytes.clear();
        self.sent = 0;
    }

    /// Waits for the socket to take more; drops what is queued if it cannot tell.
    async fn wait(&mut self, socket: &impl Datagrams) {
        if let Err(e) = socket.writable().await {
            let dropped = self.queued.len() - self.sent;
            tracing::debug!(error = %e, dropped, "send failed: datagrams dropped");
            self.sent = self.queued.len();
        }
    }
}

/// Sends up to [`SEND_BATCH`] datagrams of `batch` with one `sendmmsg`.
#[cfg(target_os = "linux")]
fn send_batch(socket: &UdpSocket, batch: &[Queued], bytes: &[u8]) -> io::Result<usize> {
    use std::io::IoSlice;

    use rustix::net::{sendmmsg, MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};

    let count = batch.len().min(SEND_BATCH);
    let unused = SocketAddr::from(([0, 0, 0, 0], 0));
    let addrs: [SocketAddrAny; SEND_BATCH] =
        std::array::from_fn(|i| SocketAddrAny::from(batch.get(i).map_or(unused, Queued::to)));
    let iovs: [[IoSlice<'_>; 1]; SEND_BATCH] = std::array::from_fn(|i| {
        [IoSlice::new(
            batch.get(i).map_or(&[][..], |q| q.bytes(bytes)),
        )]
    });
    let mut controls: [SendAncillaryBuffer<'_, '_, '_>; SEND_BATCH] =
        std::array::from_fn(|_| SendAncillaryBuffer::default());
    // The headers point into the arrays above (they are not `Send`): made for each call,
    // they never outlive it.
    let mut parts = addrs.iter().zip(&iovs);
    let mut messages = controls.each_mut().map(|control| {
        let (addr, iov) = parts.next().unwrap_or((&addrs[0], &iovs[0]));
        MMsgHdr::new_with_addr(addr, iov, control)
    });
    Ok(sendmmsg(
        socket,
        &mut messages[..count],
        SendFlags::empty(),
    )?)
}

/// Sends the first datagram of `batch`, where `sendmmsg` is not available.
#[cfg(not(target_os = "linux"))]
fn send_batch(socket: &UdpSocket, batch: &[Queued], bytes: &[u8]) -> io::Result<usize> {
    let Some(first) = batch.first() else {
        return Ok(0);
    };
    socket.send_to(first.bytes(bytes), first.to).map(|_| 1)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::time::Duration;

    use smol::future::FutureExt;
    use socket2::SockRef;

    use super::*;
    use crate::socket::bind_socket;

    /// What the scripted kernel does with one call.
    #[derive(Clone, Copy, Debug)]
    enum Step {
        /// Takes this many datagrams (at most the batch).
        Take(usize),
        /// Takes none: no room.
        Full,
        /// Refuses the first datagram.
        Refuse,
    }

    /// A kernel that follows a script, then takes whole batches.
    #[derive(Default)]
    struct Script {
        steps: Mutex<VecDeque<Step>>,
        delivered: Mutex<Vec<Vec<u8>>>,
        calls: Mutex<Vec<usize>>,
        waits: Mutex<usize>,
    }

    impl Datagrams for Script {
        fn send_batch(&self, batch: &[Queued], bytes: &[u8]) -> io::Result<usize> {
            self.calls.lock().unwrap().push(batch.len());
            let step = self.steps.lock().unwrap().pop_front();
            let take = match step.unwrap_or(Step::Take(SEND_BATCH)) {
                Step::Take(n) => n.min(batch.len()),
                Step::Full => return Err(io::ErrorKind::WouldBlock.into()),
                Step::Refuse => return Err(io::Error::other("message too long")),
            };
            let mut delivered = self.delivered.lock().unwrap();
            delivered.extend(batch[..take].iter().map(|q| q.bytes(bytes).to_vec()));
            Ok(take)
        }

        async fn writable(&self) -> io::Result<()> {
            *self.waits.lock().unwrap() += 1;
            Ok(())
        }
    }

    fn datagram(i: usize) -> Vec<u8> {
        (i as u32).to_be_bytes().repeat(1 + i % 5)
    }

    #[test]
    fn partial_sends_go_on_where_they_stopped_and_a_refused_datagram_is_skipped() {
        use Step::*;
        const COUNT: usize = 2 * SEND_BATCH + 10;
        let script = Script::default();
        script.steps.lock().unwrap().extend([
            Take(10),
            Full,
            Full,
            Take(20),
            Refuse,
            Take(1),
            Full,
        ]);
        let to = SocketAddr::from(([127, 0, 0, 1], 9));
        let mut outbox = Outbox::new();
        smol::block_on(async {
            for i in 0..COUNT {
                outbox.send(&script, to, &datagram(i)).await;
            }
            outbox.flush(&script).await;
        });
        // The 31st datagram (after 10 and 20 taken) was refused; every other one arrived, in
        // order, and nothing was sent twice.
        let expected: Vec<Vec<u8>> = (0..COUNT).filter(|&i| i != 30).map(datagram).collect();
        assert_eq!(*script.delivered.lock().unwrap(), expected);
        assert_eq!(*script.waits.lock().unwrap(), 3);
        // Each call offered what was left of the batch, never more than one batch.
        let calls = script.calls.lock().unwrap().clone();
        assert_eq!(&calls[..8], &[64, 54, 54, 54, 34, 33, 32, 32]);
        assert!(calls.iter().all(|&n| n <= SEND_BATCH), "{calls:?}");
        assert!(outbox.queued.is_empty() && outbox.bytes.is_empty());
    }

    #[test]
    fn memory_stays_within_its_bounds() {
        let script = Script::default();
        let to = SocketAddr::from(([127, 0, 0, 1], 9));
        let mut outbox = Outbox::new();
        let capacity = (outbox.bytes.capacity(), outbox.queued.capacity());
        smol::block_on(async {
            for i in 0..1_000 {
                outbox.send(&script, to, &vec![0; (i * 997) % 9_000]).await;
                assert!(outbox.queued.len() <= SEND_BATCH && outbox.bytes.len() <= SEND_BYTES);
            }
            // Longer than any datagram: dropped, not queued.
            outbox.send(&script, to, &vec![0; MAX_BOTTLE_LEN + 1]).await;
            outbox.flush(&script).await;
        });
        assert_eq!(script.delivered.lock().unwrap().len(), 1_000);
        assert_eq!(
            (outbox.bytes.capacity(), outbox.queued.capacity()),
            capacity
        );
    }

    #[test]
    fn a_flush_larger_than_the_send_buffer_delivers_every_datagram_in_order() {
        const COUNT: usize = 3 * SEND_BATCH + 7;
        let sender = bind_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        // The kernel's smallest send buffer: a few KiB, against 20 KiB to send.
        SockRef::from(sender.get_ref())
            .set_send_buffer_size(1)
            .unwrap();
        let receiver = bind_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        let to = receiver.get_ref().local_addr().unwrap();
        let payload = |i: usize| {
            let mut bytes = vec![0u8; 100];
            bytes[..4].copy_from_slice(&(i as u32).to_be_bytes());
            bytes
        };
        let mut outbox = Outbox::new();
        smol::block_on(async {
            for i in 0..COUNT {
                outbox.send(&sender, to, &payload(i)).await;
                if i == COUNT / 2 {
                    // Longer than any IPv4 datagram: refused by the kernel, skipped.
                    outbox.send(&sender, to, &[0xee; MAX_BOTTLE_LEN]).await;
                }
            }
            outbox.flush(&sender).await;
            let mut buf = vec![0u8; MAX_BOTTLE_LEN];
            for i in 0..COUNT {
                let n = async { receiver.recv(&mut buf).await.unwrap() }
                    .or(async {
                        smol::Timer::after(Duration::from_secs(5)).await;
                        panic!("datagram {i} lost")
                    })
                    .await;
                assert_eq!(&buf[..n], &payload(i)[..], "datagram {i}");
            }
        });
    }
}
