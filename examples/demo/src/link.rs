//! A network link in userspace, between devices and an AC, for both transports: it forwards
//! every bottle through a wire of limited bandwidth and fixed one-way delay, and lets a
//! [`Tap`] see, change or drop each bottle on the way (an attacker on the path).
//!
//! Devices connect to [`Link::local_addr`] instead of the AC. Over UDP each device gets
//! its own socket towards the AC; over TCP each connection its own. Each direction is one
//! wire shared by all devices: a bottle occupies it for its size on the wire (payload plus
//! 28 bytes of IPv4 and UDP header per datagram, or 40 bytes of IPv4 and TCP header per
//! 1,448 payload bytes) divided by the rate, then arrives after the delay. Datagrams that
//! would wait longer than [`LinkShape::queue_bytes`] take to send are dropped, as by a
//! router's full queue; a TCP connection stops reading instead, so its sender slows down.
//!
//! ```no_run
//! use pcxses_demo::link::{Link, LinkShape};
//! use pcxses_program::transport::Transport;
//!
//! let ac = "127.0.0.1:4700".parse().unwrap();
//! let shape = LinkShape { rate_bps: Some(10_000_000), ..LinkShape::default() };
//! let link = Link::start(Transport::Udp, ac, shape, None)?;
//! println!("devices connect to {}", link.local_addr());
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pcxses_core::frame::{push_frame, FrameDecoder};
use smol::channel::{unbounded, Receiver, Sender};
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::{Async, Executor, Timer};

use pcxses_program::transport::Transport;

/// Which way a bottle travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From a device to the AC.
    ToAc,
    /// From the AC to a device.
    ToDevice,
}

/// Sees every bottle crossing the link and returns what to forward in its place, or
/// `None` to drop it.
pub type Tap = Box<dyn FnMut(Direction, Vec<u8>) -> Option<Vec<u8>> + Send>;

/// The wire's properties, the same both ways.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkShape {
    /// Bits per second; `None` is unlimited.
    pub rate_bps: Option<u64>,
    /// One-way delay.
    pub delay: Duration,
    /// Bytes a direction may hold waiting for the wire before datagrams are dropped.
    pub queue_bytes: usize,
}

impl Default for LinkShape {
    /// Unlimited rate, no delay, a queue of 256 KiB.
    fn default() -> Self {
        LinkShape {
            rate_bps: None,
            delay: Duration::ZERO,
            queue_bytes: 256 * 1024,
        }
    }
}

/// Devices the link serves at most over UDP; datagrams from more are dropped.
const MAX_CLIENTS: usize = 1024;
/// IPv4 and UDP headers.
const UDP_OVERHEAD: usize = 28;
/// IPv4 and TCP headers, per segment of [`TCP_SEGMENT`] payload bytes.
const TCP_OVERHEAD: usize = 40;
const TCP_SEGMENT: usize = 1448;

/// One direction's wire: when it is free again.
struct Wire {
    free_at: Instant,
}

/// What every task of a link shares.
struct Shared {
    shape: LinkShape,
    tap: Mutex<Option<Tap>>,
    wires: [Mutex<Wire>; 2],
    dropped: AtomicU64,
}

/// A bottle's passage: when it has left the sender and when it arrives.
struct Passage {
    left: Instant,
    arrives: Instant,
    bytes: Vec<u8>,
}

impl Shared {
    /// Puts `bottle` through the tap and onto the wire; `None` if it is dropped.
    fn pass(&self, dir: Direction, bottle: Vec<u8>, transport: Transport) -> Option<Passage> {
        let bytes = match self.tap.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(tap) => tap(dir, bottle),
            None => Some(bottle),
        };
        let passage = bytes.and_then(|bytes| {
            let on_wire = match transport {
                Transport::Udp | Transport::Quic => bytes.len() + UDP_OVERHEAD,
                Transport::Tcp => {
                    bytes.len() + TCP_OVERHEAD * bytes.len().div_ceil(TCP_SEGMENT).max(1)
                }
            };
            let (left, arrives) = self.occupy(dir, on_wire, transport != Transport::Tcp)?;
            Some(Passage {
                left,
                arrives,
                bytes,
            })
        });
        if passage.is_none() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        passage
    }

    /// How long the wire takes to send `bytes`; no time at an unlimited rate.
    fn send_time(&self, bytes: usize) -> Duration {
        match self.shape.rate_bps.filter(|r| *r > 0) {
            Some(rate) => {
                Duration::from_nanos((bytes as u128 * 8 * 1_000_000_000 / u128::from(rate)) as u64)
            }
            None => Duration::ZERO,
        }
    }

    /// Occupies `dir`'s wire with `bytes`; `None` if `drop_tail` and its queue is full.
    fn occupy(&self, dir: Direction, bytes: usize, drop_tail: bool) -> Option<(Instant, Instant)> {
        let now = Instant::now();
        if self.shape.rate_bps.filter(|r| *r > 0).is_none() {
            return Some((now, now + self.shape.delay));
        }
        let mut wire = self.wires[dir as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let start = wire.free_at.max(now);
        if drop_tail && start - now > self.send_time(self.shape.queue_bytes) {
            return None;
        }
        wire.free_at = start + self.send_time(bytes);
        Some((wire.free_at, wire.free_at + self.shape.delay))
    }
}

/// A running link; dropping it stops it.
pub struct Link {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Link {
    /// Starts a link on `127.0.0.1` towards the AC at `upstream`, on a thread of its own.
    pub fn start(
        transport: Transport,
        upstream: SocketAddr,
        shape: LinkShape,
        tap: Option<Tap>,
    ) -> io::Result<Link> {
        let now = Instant::now();
        let shared = Arc::new(Shared {
            shape,
            tap: Mutex::new(tap),
            wires: [
                Mutex::new(Wire { free_at: now }),
                Mutex::new(Wire { free_at: now }),
            ],
            dropped: AtomicU64::new(0),
        });
        let any: SocketAddr = ([127, 0, 0, 1], 0).into();
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let (local_addr, thread) = match transport {
            // QUIC's datagrams cross the link as they are: sealed, so a tap sees only
            // ciphertext.
            Transport::Udp | Transport::Quic => {
                let front = Async::<UdpSocket>::bind(any)?;
                let addr = front.get_ref().local_addr()?;
                let shared = shared.clone();
                (
                    addr,
                    run(stopped, move |ex| serve_udp(ex, front, upstream, shared)),
                )
            }
            Transport::Tcp => {
                let listener = Async::<TcpListener>::bind(any)?;
                let addr = listener.get_ref().local_addr()?;
                let shared = shared.clone();
                (
                    addr,
                    run(stopped, move |ex| serve_tcp(ex, listener, upstream, shared)),
                )
            }
        };
        Ok(Link {
            local_addr,
            shared,
            stop,
            thread: Some(thread),
        })
    }

    /// Where devices connect.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Bottles dropped so far, by the tap or a full queue.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs `serve` on a thread with an executor of its own until `stopped` closes.
fn run<F, Fut>(stopped: Receiver<()>, serve: F) -> JoinHandle<()>
where
    F: FnOnce(Arc<Executor<'static>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = io::Result<()>> + Send + 'static,
{
    std::thread::spawn(move || {
        let ex = Arc::new(Executor::new());
        let result = smol::block_on(ex.run(serve(ex.clone()).or(async {
            let _ = stopped.recv().await;
            Ok(())
        })));
        if let Err(e) = result {
            tracing::warn!(error = %e, "link stopped");
        }
    })
}

/// Delivers each bottle of `queue` when it arrives, in order, with `send`.
async fn deliver<T, F, Fut>(queue: Receiver<(Instant, T)>, mut send: F)
where
    F: FnMut(T) -> Fut,
    Fut: std::future::Future<Output = io::Result<()>>,
{
    while let Ok((at, item)) = queue.recv().await {
        Timer::at(at).await;
        if send(item).await.is_err() {
            break;
        }
    }
}

async fn serve_udp(
    ex: Arc<Executor<'static>>,
    front: Async<UdpSocket>,
    upstream: SocketAddr,
    shared: Arc<Shared>,
) -> io::Result<()> {
    let front = Arc::new(front);
    let (to_devices, down) = unbounded::<(Instant, (SocketAddr, Vec<u8>))>();
    let out = front.clone();
    ex.spawn(deliver(down, move |(to, bytes): (SocketAddr, Vec<u8>)| {
        let out = out.clone();
        async move { out.send_to(&bytes, to).await.map(drop) }
    }))
    .detach();
    let mut clients: HashMap<SocketAddr, Sender<(Instant, Vec<u8>)>> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = front.recv_from(&mut buf).await?;
        if !clients.contains_key(&from) {
            if clients.len() >= MAX_CLIENTS {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let client = udp_client(&ex, from, upstream, &shared, &to_devices)?;
            clients.insert(from, client);
        }
        let Some(p) = shared.pass(Direction::ToAc, buf[..n].to_vec(), Transport::Udp) else {
            continue;
        };
        if let Some(client) = clients.get(&from) {
            let _ = client.send((p.arrives, p.bytes)).await;
        }
    }
}

/// One device's socket towards the AC: what the device sends goes out on it, and what
/// comes back goes onto the wire to the device.
fn udp_client(
    ex: &Arc<Executor<'static>>,
    device: SocketAddr,
    upstream: SocketAddr,
    shared: &Arc<Shared>,
    to_devices: &Sender<(Instant, (SocketAddr, Vec<u8>))>,
) -> io::Result<Sender<(Instant, Vec<u8>)>> {
    let socket = Arc::new(Async::<UdpSocket>::bind(([127, 0, 0, 1], 0))?);
    socket.get_ref().connect(upstream)?;
    let (tx, up) = unbounded::<(Instant, Vec<u8>)>();
    let out = socket.clone();
    ex.spawn(deliver(up, move |bytes: Vec<u8>| {
        let out = out.clone();
        async move { refused_is_lost(out.send(&bytes).await.map(drop)) }
    }))
    .detach();
    let (shared, to_devices) = (shared.clone(), to_devices.clone());
    ex.spawn(async move {
        let mut buf = vec![0u8; 65_536];
        loop {
            // While the AC is down, datagrams towards it are refused; it may come back.
            let n = match socket.recv(&mut buf).await {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(_) => break,
            };
            if let Some(p) = shared.pass(Direction::ToDevice, buf[..n].to_vec(), Transport::Udp) {
                if to_devices
                    .send((p.arrives, (device, p.bytes)))
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    })
    .detach();
    Ok(tx)
}

/// A datagram refused because nothing listens at the AC's address (it is restarting) is
/// lost like any other; the link goes on.
fn refused_is_lost(sent: io::Result<()>) -> io::Result<()> {
    match sent {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
        other => other,
    }
}

async fn serve_tcp(
    ex: Arc<Executor<'static>>,
    listener: Async<TcpListener>,
    upstream: SocketAddr,
    shared: Arc<Shared>,
) -> io::Result<()> {
    loop {
        let (device, _) = listener.accept().await?;
        let (ex2, shared) = (ex.clone(), shared.clone());
        ex.spawn(async move {
            let Ok(ac) = Async::<TcpStream>::connect(upstream).await else {
                return;
            };
            // Bottles are small and go out at once, as the transports send them.
            for s in [&device, &ac] {
                let _ = s.get_ref().set_nodelay(true);
            }
            let (device, ac) = (Arc::new(device), Arc::new(ac));
            let up = ex2.spawn(pump(
                ex2.clone(),
                device.clone(),
                ac.clone(),
                Direction::ToAc,
                shared.clone(),
            ));
            pump(ex2, ac, device, Direction::ToDevice, shared).await;
            up.await;
        })
        .detach();
    }
}

/// Forwards the frames of `from` to `to` through the wire of `dir`, reading no faster than
/// the wire sends; closes `to`'s sending side when `from` ends.
async fn pump(
    ex: Arc<Executor<'static>>,
    from: Arc<Async<TcpStream>>,
    to: Arc<Async<TcpStream>>,
    dir: Direction,
    shared: Arc<Shared>,
) {
    let (tx, queue) = unbounded::<(Instant, Vec<u8>)>();
    let out = to.clone();
    let writer = ex.spawn(deliver(queue, move |frame: Vec<u8>| {
        let out = out.clone();
        async move { (&*out).write_all(&frame).await }
    }));
    let mut decoder = FrameDecoder::new(pcxses_core::MAX_BOTTLE_LEN);
    let mut buf = vec![0u8; 65_536];
    'read: while let Ok(n @ 1..) = (&*from).read(&mut buf).await {
        let mut input = &buf[..n];
        loop {
            let bottle = match decoder.decode(&mut input) {
                Ok(Some(frame)) => frame.to_vec(),
                Ok(None) => break,
                Err(_) => break 'read,
            };
            if let Some(p) = shared.pass(dir, bottle, Transport::Tcp) {
                let mut frame = Vec::with_capacity(p.bytes.len() + 3);
                push_frame(&p.bytes, &mut frame);
                if tx.send((p.arrives, frame)).await.is_err() {
                    break 'read;
                }
                // Read on while the wire's queue has room, as a socket's send buffer does.
                if let Some(at) = p
                    .left
                    .checked_sub(shared.send_time(shared.shape.queue_bytes))
                {
                    Timer::at(at).await;
                }
            }
        }
    }
    drop(tx);
    writer.await;
    let _ = to.get_ref().shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(rate_bps: Option<u64>, queue_bytes: usize) -> Shared {
        let now = Instant::now();
        Shared {
            shape: LinkShape {
                rate_bps,
                delay: Duration::from_millis(5),
                queue_bytes,
            },
            tap: Mutex::new(None),
            wires: [
                Mutex::new(Wire { free_at: now }),
                Mutex::new(Wire { free_at: now }),
            ],
            dropped: AtomicU64::new(0),
        }
    }

    #[test]
    fn the_wire_sends_at_its_rate_and_drops_past_its_queue() {
        // 1,250 bytes at 10 Mbit/s take 1 ms; a queue of 4,000 bytes holds about 3 of them.
        let link = shared(Some(10_000_000), 4_000);
        let first = link.occupy(Direction::ToAc, 1_250, true).unwrap();
        let second = link.occupy(Direction::ToAc, 1_250, true).unwrap();
        assert_eq!(second.0 - first.0, Duration::from_millis(1));
        assert_eq!(second.1 - second.0, Duration::from_millis(5));
        let passed = (0..10)
            .filter(|_| link.occupy(Direction::ToAc, 1_250, true).is_some())
            .count();
        assert!((1..=3).contains(&passed), "{passed} passed");
        // The other direction is a wire of its own; TCP waits instead of dropping.
        assert!(link.occupy(Direction::ToDevice, 1_250, true).is_some());
        assert!((0..10).all(|_| link.occupy(Direction::ToAc, 1_250, false).is_some()));
    }

    #[test]
    fn the_tap_changes_or_drops_bottles() {
        let link = shared(None, 0);
        *link.tap.lock().unwrap() = Some(Box::new(|dir, mut b: Vec<u8>| {
            b[0] ^= 1;
            (dir == Direction::ToAc).then_some(b)
        }));
        let p = link
            .pass(Direction::ToAc, vec![0, 7], Transport::Udp)
            .unwrap();
        assert_eq!(p.bytes, [1, 7]);
        assert!(link
            .pass(Direction::ToDevice, vec![0], Transport::Udp)
            .is_none());
        assert_eq!(link.dropped.load(Ordering::Relaxed), 1);
    }
}
