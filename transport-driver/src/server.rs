//! The AC's side of a connection transport: connections arrive from the adapter's
//! acceptor, are held under [`ConnectionLimits`], and their frames feed the controller.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use pcxses_core::{LinkId, Transmit};
use smol::channel::{bounded, Receiver, Sender};
use smol::future::FutureExt;
use smol::{Executor, Task, Timer};

use crate::connection::{Connection, Opened};
use crate::controller::Port;
use crate::frames::{Frames, Inbound};
use crate::limits::{ConnectionLimits, ConnectionStats};
use crate::refusal::{Inputs, RefusalReason};
use crate::table::{Admission, Connections};
use crate::throttle::{Throttle, WARN_PERIOD};

/// New connections taken in one turn of the driver, at most; as many wait for it, and the
/// acceptor waits for room beyond that.
pub const ACCEPT_BATCH: usize = 16;

/// Frames read and not yet handed to the controller, at most, over all connections.
const INBOUND_QUEUE: usize = 4_096;

/// What an acceptor hands the driver.
enum Arrival<C> {
    /// A new connection, from a peer.
    Opened(LinkId, Option<SocketAddr>, Opened<C>),
    /// A peer the acceptor refused (a failed TLS handshake).
    Refused(SocketAddr, RefusalReason),
    /// Accepting failed for want of resources (file descriptors): make room.
    Exhausted,
}

/// The acceptor's side of a [`Server`]: where it hands over the connections it accepted.
/// Cloning it is cheap (one per handshake in flight, say).
pub struct Arrivals<C> {
    to: Sender<Arrival<C>>,
    inbound: Sender<Inbound>,
    links: Arc<AtomicU64>,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
}

impl<C> Clone for Arrivals<C> {
    fn clone(&self) -> Self {
        Arrivals {
            to: self.to.clone(),
            inbound: self.inbound.clone(),
            links: self.links.clone(),
            limits: self.limits,
            stats: self.stats.clone(),
        }
    }
}

impl<C: Connection> Arrivals<C> {
    /// The bounds the server keeps: an acceptor keeps those of its own
    /// ([`ConnectionLimits::max_handshakes`]).
    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// The counters of the bounds, where an acceptor counts what it refused.
    pub fn stats(&self) -> &ConnectionStats {
        &self.stats
    }

    /// Hands the driver a new connection from `peer` (its address, for a transport whose
    /// peers have one), which `open` makes from the sink of
    /// its frames (a new link); waits while [`ACCEPT_BATCH`] connections wait already.
    /// `false` once the driver is gone.
    pub async fn open(
        &self,
        peer: Option<SocketAddr>,
        open: impl FnOnce(Frames) -> Opened<C>,
    ) -> bool {
        let link = LinkId(self.links.fetch_add(1, Relaxed) + 1);
        let opened = open(Frames::new(link, self.inbound.clone()));
        let arrival = Arrival::Opened(link, peer, opened);
        self.to.send(arrival).await.is_ok()
    }

    /// Reports a peer refused before its connection was handed over (a failed TLS
    /// handshake): counted at once, reported as the driver reports refusals (unless
    /// [`ACCEPT_BATCH`] arrivals wait already, when only the count remains).
    pub fn refused(&self, peer: SocketAddr, reason: RefusalReason) {
        if let RefusalReason::Tls(_) = reason {
            self.stats.tls_refused.fetch_add(1, Relaxed);
        }
        let _ = self.to.try_send(Arrival::Refused(peer, reason));
    }

    /// Accepting failed for want of something that closing a connection gives back (file
    /// descriptors): the driver closes the oldest connection without an accepted bottle.
    pub fn exhausted(&self) {
        let _ = self.to.try_send(Arrival::Exhausted);
    }
}

/// A connection the driver holds, with the task that keeps it going.
struct Held<C> {
    connection: C,
    peer: Option<SocketAddr>,
    _io: Task<()>,
}

/// The [`Port`] of a connection transport: its acceptor's connections, held in a table
/// bounded by [`ConnectionLimits`] (the oldest connection without an accepted bottle
/// makes room for a new one; deadlines for the first accepted bottle and for idleness),
/// each read by a task of its own into one bounded queue, each written through its
/// [`Connection`].
pub struct Server<C> {
    /// Dropped first: the acceptor stops (closing what it listens on) before the
    /// connections close.
    _acceptor: Task<()>,
    ex: Arc<Executor<'static>>,
    local_addr: SocketAddr,
    connections: Connections<Held<C>>,
    stats: Arc<ConnectionStats>,
    arrivals: Receiver<Arrival<C>>,
    inbound: Receiver<Inbound>,
    inbound_tx: Sender<Inbound>,
    /// What [`Port::ready`] took from a queue.
    waiting: Option<Waiting<C>>,
    expired: Vec<(LinkId, Held<C>)>,
    /// Peers the acceptor refused, reported in the next turns' input.
    refused: Vec<(SocketAddr, RefusalReason)>,
    warn: Throttle,
    /// Bottles dropped because a connection's write buffer was full.
    dropped: u64,
}

enum Waiting<C> {
    Arrival(Arrival<C>),
    Inbound(Inbound),
}

impl<C: Connection> Server<C> {
    /// A server on `local_addr` bounded by `limits`, whose connections come from `accept`
    /// (given the [`Arrivals`] to hand them to), which runs in a task of `ex` until the
    /// server is dropped.
    pub fn new<F, A>(
        ex: &Arc<Executor<'static>>,
        local_addr: SocketAddr,
        limits: ConnectionLimits,
        accept: F,
    ) -> Self
    where
        F: FnOnce(Arrivals<C>) -> A,
        A: Future<Output = ()> + Send + 'static,
    {
        let stats = Arc::new(ConnectionStats::default());
        let (to, arrivals) = bounded(ACCEPT_BATCH);
        let (inbound_tx, inbound) = bounded(INBOUND_QUEUE);
        let acceptor = ex.spawn(accept(Arrivals {
            to,
            inbound: inbound_tx.clone(),
            links: Arc::default(),
            limits,
            stats: stats.clone(),
        }));
        Server {
            _acceptor: acceptor,
            ex: ex.clone(),
            local_addr,
            connections: Connections::new(limits, stats.clone()),
            stats,
            arrivals,
            inbound,
            inbound_tx,
            waiting: None,
            expired: Vec::new(),
            refused: Vec::new(),
            warn: Throttle::new(WARN_PERIOD),
            dropped: 0,
        }
    }

    /// Takes a new connection, or makes room when the acceptor ran out of resources.
    fn arrived(&mut self, arrival: Arrival<C>) {
        let (link, peer, opened) = match arrival {
            Arrival::Opened(link, peer, opened) => (link, peer, opened),
            Arrival::Refused(peer, reason) => {
                if self.refused.len() < ACCEPT_BATCH {
                    self.refused.push((peer, reason));
                }
                return;
            }
            Arrival::Exhausted => {
                if let Some((link, _)) = self.connections.evict_oldest_unproven() {
                    tracing::debug!(?link, "evicted to free a file descriptor");
                }
                return;
            }
        };
        let frames = Frames::new(link, self.inbound_tx.clone());
        let io = opened.io;
        let held = Held {
            connection: opened.connection,
            peer,
            _io: self.ex.spawn(async move {
                io.await;
                frames.closed().await;
            }),
        };
        let now = Instant::now();
        match self.connections.admit(link, held, now) {
            Admission::Admitted => {}
            Admission::Evicted(old, _) => {
                if let Some(suppressed) = self.warn.allow(now) {
                    tracing::warn!(
                        evicted = ?old,
                        suppressed,
                        "connection limit reached: closed the oldest connection without an accepted bottle"
                    );
                }
            }
            Admission::Refused(_) => {
                if let Some(suppressed) = self.warn.allow(now) {
                    tracing::warn!(
                        ?link,
                        suppressed,
                        "connection limit reached and every connection proven: refused a new one"
                    );
                }
            }
        }
    }
}

impl<C: Connection> Port for Server<C> {
    fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    async fn ready(&mut self) {
        if self.waiting.is_some() {
            return;
        }
        let deadline = self.connections.next_deadline();
        let waiting = async {
            match self.arrivals.recv().await {
                Ok(a) => Some(Waiting::Arrival(a)),
                // The acceptor is gone: no more connections.
                Err(_) => std::future::pending().await,
            }
        }
        .or(async {
            let inbound = self.inbound.recv().await;
            Some(Waiting::Inbound(
                inbound.expect("the server holds a sender"),
            ))
        })
        .or(async {
            match deadline {
                Some(at) => Timer::at(at).await,
                None => Timer::never().await,
            };
            None
        })
        .await;
        self.waiting = waiting;
    }

    /// Closes the connections past their deadlines, then takes new connections, at most
    /// [`ACCEPT_BATCH`].
    fn turn(&mut self) {
        self.connections.expire(Instant::now(), &mut self.expired);
        for (link, _) in self.expired.drain(..) {
            tracing::debug!(?link, "connection expired");
        }
        let mut first = match self.waiting.take() {
            Some(Waiting::Arrival(a)) => Some(a),
            other => {
                self.waiting = other;
                None
            }
        };
        for _ in 0..ACCEPT_BATCH {
            let Some(a) = first.take().or_else(|| self.arrivals.try_recv().ok()) else {
                break;
            };
            self.arrived(a);
        }
    }

    fn receive(&mut self, inputs: &mut Inputs<'_>) -> bool {
        if let Some((peer, reason)) = self.refused.pop() {
            inputs.refused(peer, reason);
            return true;
        }
        let item = match self.waiting.take() {
            Some(Waiting::Inbound(i)) => i,
            other => {
                self.waiting = other;
                match self.inbound.try_recv() {
                    Ok(i) => i,
                    Err(_) => return false,
                }
            }
        };
        match item {
            Inbound::Frame(link, frame) => {
                // A frame read after its connection was closed is passed over.
                let Some(held) = self.connections.get(link) else {
                    return true;
                };
                let identity = held.connection.identity();
                let result = inputs.bottle(link, held.peer, &frame, identity);
                self.connections.heard(link, Instant::now(), result.is_ok());
            }
            Inbound::Closed(link) => {
                self.connections.remove(link);
            }
        }
        true
    }

    async fn send(&mut self, t: Transmit<'_>) {
        // Bottles for a link with no open connection are passed over.
        if let Some(held) = self.connections.get(t.to) {
            if held.connection.send(t.kind, t.bytes).is_err() {
                self.dropped += 1;
            }
        }
    }

    fn peer_addr(&self, link: LinkId) -> Option<SocketAddr> {
        self.connections.get(link).and_then(|held| held.peer)
    }

    fn connections(&self) -> Option<Arc<ConnectionStats>> {
        Some(self.stats.clone())
    }
}

impl<C> Drop for Server<C> {
    fn drop(&mut self) {
        if self.dropped > 0 {
            tracing::warn!(
                dropped = self.dropped,
                "bottles dropped: a peer fell behind"
            );
        }
    }
}
