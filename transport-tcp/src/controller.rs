//! The AC on a TCP listener.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pcxses_core::controller::ControllerCommand;
use pcxses_core::frame::push_frame;
use pcxses_core::{Controller, ControllerEvent, Epoch, Stats};
use smol::channel::{bounded, Receiver, Sender};
use smol::future::FutureExt;
use smol::io::AsyncWriteExt;
use smol::net::{TcpListener, TcpStream};
use smol::{Executor, Task};

use crate::acceptor::{accept, Accepted};
use crate::limits::{ConnectionLimits, ConnectionStats};
use crate::reader::{read_frames, Inbound};
use crate::serving::Serving;
use crate::{EVENT_QUEUE, WRITE_BUFFER};

/// The running AC: its events, its commands, and the task that drives it.
pub struct ControllerHandle {
    /// Protocol events, in order.
    pub events: Receiver<ControllerEvent>,
    /// Commands to the controller.
    pub commands: Sender<ControllerCommand>,
    /// The listener's address.
    pub local_addr: SocketAddr,
    /// The controller's counters, refreshed after every input.
    pub stats: Arc<Mutex<Stats>>,
    /// What the connection bounds did.
    pub connections: Arc<ConnectionStats>,
    /// The driving task; it ends when `commands` is closed, with the final counters.
    pub task: Task<io::Result<Stats>>,
}

/// Listens on `addr` and drives `controller` for every connection, in a task of `ex`,
/// with the default [`ConnectionLimits`]. Incoming frames are bounded by the largest
/// bottle any framing carries.
pub async fn spawn_controller(
    ex: &Arc<Executor<'static>>,
    controller: Controller,
    epoch: Epoch,
    addr: SocketAddr,
) -> io::Result<ControllerHandle> {
    spawn_controller_with(ex, controller, epoch, addr, ConnectionLimits::default()).await
}

/// [`spawn_controller`] with the connections bounded by `limits`.
pub async fn spawn_controller_with(
    ex: &Arc<Executor<'static>>,
    controller: Controller,
    epoch: Epoch,
    addr: SocketAddr,
    limits: ConnectionLimits,
) -> io::Result<ControllerHandle> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let (event_tx, events) = bounded(EVENT_QUEUE);
    let (commands, command_rx) = bounded(64);
    let stats = Arc::new(Mutex::new(Stats::default()));
    let connections = Arc::new(ConnectionStats::default());
    let task = ex.spawn(run(
        ex.clone(),
        controller,
        epoch,
        listener,
        limits,
        connections.clone(),
        event_tx,
        command_rx,
        stats.clone(),
    ));
    Ok(ControllerHandle {
        events,
        commands,
        local_addr,
        task,
        stats,
        connections,
    })
}

/// One accepted connection; dropping it stops its reader and writer.
struct Connection {
    /// Frames waiting for the writer, which swaps the buffer for its own: both sides reuse
    /// their allocations, so sending a bottle allocates nothing.
    pending: Arc<Mutex<Vec<u8>>>,
    /// Wakes the writer; one wake-up pending is enough.
    wake: Sender<()>,
    _writer: Task<()>,
    _reader: Task<()>,
}

impl Connection {
    /// Queues one frame; `false` when the connection's buffer is full.
    fn push(&self, bottle: &[u8]) -> bool {
        let Ok(mut pending) = self.pending.lock() else {
            return false;
        };
        if pending.len() + bottle.len() + pcxses_core::frame::MAX_PREFIX_LEN > WRITE_BUFFER {
            return false;
        }
        push_frame(bottle, &mut pending);
        drop(pending);
        let _ = self.wake.try_send(());
        true
    }
}

enum Wake {
    Accepted(Accepted),
    Inbound(Inbound),
    /// The controller's timeout or a connection's deadline.
    Deadline,
    Command(Option<ControllerCommand>),
}

async fn write_frames(mut stream: TcpStream, pending: Arc<Mutex<Vec<u8>>>, wake: Receiver<()>) {
    let mut out = Vec::new();
    while wake.recv().await.is_ok() {
        match pending.lock() {
            Ok(mut p) => std::mem::swap(&mut *p, &mut out),
            Err(_) => return,
        }
        if stream.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
}

/// Inbound frames handled before the controller is drained: one journal commit (one
/// sync) covers them all.
const BATCH: usize = 256;

/// New connections taken in one turn of the driver, at most.
const ACCEPT_BATCH: usize = 16;

/// The channels and bounds a driver serves.
struct Io {
    accepted: Receiver<Accepted>,
    inbound_tx: Sender<Inbound>,
    inbound: Receiver<Inbound>,
    commands: Receiver<ControllerCommand>,
    events: Sender<ControllerEvent>,
    shared: Arc<Mutex<Stats>>,
}

#[allow(clippy::too_many_arguments)]
async fn run(
    ex: Arc<Executor<'static>>,
    ac: Controller,
    epoch: Epoch,
    listener: TcpListener,
    limits: ConnectionLimits,
    conn_stats: Arc<ConnectionStats>,
    events: Sender<ControllerEvent>,
    commands: Receiver<ControllerCommand>,
    shared: Arc<Mutex<Stats>>,
) -> io::Result<Stats> {
    let (accepted_tx, accepted) = bounded(ACCEPT_BATCH);
    let _acceptor = ex.spawn(accept(listener, accepted_tx, conn_stats.clone()));
    let (inbound_tx, inbound) = bounded(4_096);
    let io = Io {
        accepted,
        inbound_tx,
        inbound,
        commands,
        events,
        shared,
    };
    Driver {
        ex,
        serving: Serving::new(ac, epoch, limits, conn_stats),
    }
    .run(io)
    .await
}

/// The controller and its connections.
struct Driver {
    ex: Arc<Executor<'static>>,
    serving: Serving<Connection>,
}

impl Driver {
    async fn run(mut self, io: Io) -> io::Result<Stats> {
        let mut expired = Vec::new();
        loop {
            let wake_at = self.serving.drain(&io.events, |c, bottle| c.push(bottle));
            let deadline = self.serving.deadline(wake_at);
            // Commands and timers first, then new connections, then frames: under a steady
            // stream of frames the others still get their turn.
            let wake = async { Wake::Command(io.commands.recv().await.ok()) }
                .or(async {
                    deadline.await;
                    Wake::Deadline
                })
                .or(async {
                    match io.accepted.recv().await {
                        Ok(a) => Wake::Accepted(a),
                        Err(_) => std::future::pending().await,
                    }
                })
                .or(async {
                    Wake::Inbound(io.inbound.recv().await.expect("the driver holds a sender"))
                })
                .await;
            let now = self.serving.wake(wake_at);
            let (first_accepted, first_inbound) = match wake {
                Wake::Accepted(a) => (Some(a), None),
                Wake::Inbound(i) => (None, Some(i)),
                Wake::Deadline => (None, None),
                Wake::Command(Some(command)) => {
                    self.serving.command(command, now);
                    (None, None)
                }
                Wake::Command(None) => return Ok(self.serving.stop()),
            };
            self.serving.expire(&mut expired);
            // Whatever else is ready, in bounded batches; then one drain: with a journal,
            // one commit.
            let more = std::iter::from_fn(|| io.accepted.try_recv().ok());
            for a in first_accepted.into_iter().chain(more).take(ACCEPT_BATCH) {
                self.accepted(a, &io.inbound_tx);
            }
            let more = std::iter::from_fn(|| io.inbound.try_recv().ok());
            for item in first_inbound.into_iter().chain(more).take(BATCH) {
                self.inbound(item, now);
            }
            self.serving.publish(&io.shared);
            // Let the connections' and the application's tasks run between batches.
            smol::future::yield_now().await;
        }
    }

    fn accepted(&mut self, accepted: Accepted, inbound: &Sender<Inbound>) {
        let now = Instant::now();
        let (link, stream) = match accepted {
            Accepted::Opened(link, stream) => (link, stream),
            Accepted::Exhausted => {
                if let Some((link, _)) = self.serving.connections.evict_oldest_unproven() {
                    tracing::debug!(?link, "evicted to free a file descriptor");
                }
                return;
            }
        };
        let (wake, woken) = bounded(1);
        let pending = Arc::new(Mutex::new(Vec::new()));
        let connection = Connection {
            pending: pending.clone(),
            wake,
            _writer: self.ex.spawn(write_frames(stream.clone(), pending, woken)),
            _reader: self.ex.spawn(read_frames(
                stream,
                link,
                pcxses_core::MAX_BOTTLE_LEN,
                inbound.clone(),
            )),
        };
        self.serving.admit(link, connection, now);
    }

    fn inbound(&mut self, item: Inbound, now: pcxses_core::Instant) {
        match item {
            Inbound::Opened(..) => {}
            Inbound::Frame(link, frame) => self.serving.receive(link, &frame, now, |_| None),
            Inbound::Closed(link) => {
                self.serving.connections.remove(link);
            }
        }
    }
}
