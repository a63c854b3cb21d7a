//! The AC on a QUIC endpoint.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pcxses_core::controller::ControllerCommand;
use pcxses_core::{Controller, ControllerEvent, Epoch, Stats};
use pcxses_transport_tcp::serving::Serving;
use pcxses_transport_tcp::{ConnectionLimits, ConnectionStats};
use smol::channel::{bounded, Receiver, Sender};
use smol::future::FutureExt;
use smol::{Executor, Task};

use crate::acceptor::Acceptor;
use crate::stream::{Inbound, Pipe};
use crate::tls::ServerTls;
use crate::EVENT_QUEUE;

/// The bottle type of OBJECT_CHUNK (`docs/PROTOCOL.md` §3), the second byte of the bottle:
/// these go on the connection's bulk stream.
const OBJECT_CHUNK: u8 = 7;

/// The running AC: its events, its commands, and the task that drives it.
pub struct ControllerHandle {
    /// Protocol events, in order.
    pub events: Receiver<ControllerEvent>,
    /// Commands to the controller.
    pub commands: Sender<ControllerCommand>,
    /// The endpoint's address.
    pub local_addr: SocketAddr,
    /// The controller's counters, refreshed after every input.
    pub stats: Arc<Mutex<Stats>>,
    /// What the connection bounds did.
    pub connections: Arc<ConnectionStats>,
    /// The driving task; it ends when `commands` is closed, with the final counters.
    pub task: Task<io::Result<Stats>>,
}

/// Serves QUIC on `addr` with `tls` and drives `controller` for every connection, in a
/// task of `ex`, with the default [`ConnectionLimits`].
pub async fn spawn_controller(
    ex: &Arc<Executor<'static>>,
    controller: Controller,
    epoch: Epoch,
    addr: SocketAddr,
    tls: &ServerTls,
) -> io::Result<ControllerHandle> {
    spawn_controller_with(
        ex,
        controller,
        epoch,
        addr,
        tls,
        ConnectionLimits::default(),
    )
    .await
}

/// [`spawn_controller`] with the connections and handshakes bounded by `limits`.
pub async fn spawn_controller_with(
    ex: &Arc<Executor<'static>>,
    controller: Controller,
    epoch: Epoch,
    addr: SocketAddr,
    tls: &ServerTls,
    limits: ConnectionLimits,
) -> io::Result<ControllerHandle> {
    let mut config = tls.quinn_config().map_err(io::Error::other)?;
    // Attempts not yet taken by the acceptor: a backstop only, room enough that the
    // acceptor sees (and counts) each attempt it refuses beyond `max_handshakes`.
    config.max_incoming(limits.max_handshakes.max(1).saturating_mul(4));
    let endpoint = crate::endpoint(addr, Some(config))?;
    let local_addr = endpoint.local_addr()?;
    let (event_tx, events) = bounded(EVENT_QUEUE);
    let (commands, command_rx) = bounded(64);
    let stats = Arc::new(Mutex::new(Stats::default()));
    let connections = Arc::new(ConnectionStats::default());
    let io = Io {
        inbound: bounded(4_096),
        events: event_tx,
        commands: command_rx,
        shared: stats.clone(),
    };
    let acceptor = Acceptor {
        ex: ex.clone(),
        endpoint: endpoint.clone(),
        inbound: io.inbound.0.clone(),
        limits,
        stats: connections.clone(),
    };
    let driver = Driver {
        ex: ex.clone(),
        serving: Serving::new(controller, epoch, limits, connections.clone()),
    };
    let task = ex.spawn(driver.run(io, acceptor, endpoint));
    Ok(ControllerHandle {
        events,
        commands,
        local_addr,
        stats,
        connections,
        task,
    })
}

/// One device's connection: its certified name and its two streams. Dropping it closes
/// the connection.
struct Connection {
    identity: Option<String>,
    connection: quinn::Connection,
    control: Pipe,
    bulk: Pipe,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.connection.close(0u32.into(), b"closed");
    }
}

enum Wake {
    Inbound(Inbound),
    /// The controller's timeout or a connection's deadline.
    Deadline,
    Command(Option<ControllerCommand>),
}

/// Inbound frames handled before the controller is drained: one journal commit (one
/// sync) covers them all.
const BATCH: usize = 256;

/// The driver's channels.
struct Io {
    inbound: (Sender<Inbound>, Receiver<Inbound>),
    events: Sender<ControllerEvent>,
    commands: Receiver<ControllerCommand>,
    shared: Arc<Mutex<Stats>>,
}

/// The controller and its connections.
struct Driver {
    ex: Arc<Executor<'static>>,
    serving: Serving<Connection>,
}

impl Driver {
    async fn run(
        mut self,
        io: Io,
        acceptor: Acceptor,
        endpoint: quinn::Endpoint,
    ) -> io::Result<Stats> {
        let _acceptor = self.ex.spawn(acceptor.run());
        let inbound = &io.inbound.1;
        let mut expired = Vec::new();
        loop {
            let wake_at = self.serving.drain(&io.events, |c, bottle| {
                let pipe = if bottle.get(1) == Some(&OBJECT_CHUNK) {
                    &c.bulk
                } else {
                    &c.control
                };
                pipe.push(bottle)
            });
            let deadline = self.serving.deadline(wake_at);
            // Commands and timers first: under a steady stream of frames they still get
            // their turn.
            let wake = async { Wake::Command(io.commands.recv().await.ok()) }
                .or(async {
                    deadline.await;
                    Wake::Deadline
                })
                .or(async { Wake::Inbound(inbound.recv().await.expect("run holds a sender")) })
                .await;
            let now = self.serving.wake(wake_at);
            let first = match wake {
                Wake::Inbound(first) => Some(first),
                Wake::Deadline => None,
                Wake::Command(Some(command)) => {
                    self.serving.command(command, now);
                    None
                }
                Wake::Command(None) => {
                    let stats = self.serving.stop();
                    endpoint.close(0u32.into(), b"AC stopping");
                    return Ok(stats);
                }
            };
            self.serving.expire(&mut expired);
            // A bounded batch of what came in, then one drain: with a journal, one commit.
            let more = std::iter::from_fn(|| inbound.try_recv().ok());
            for item in first.into_iter().chain(more).take(BATCH) {
                self.inbound(item, now);
            }
            self.serving.publish(&io.shared);
            // Let the connections' and the application's tasks run between batches.
            smol::future::yield_now().await;
        }
    }

    fn inbound(&mut self, item: Inbound, now: pcxses_core::Instant) {
        match item {
            Inbound::Opened {
                link,
                identity,
                connection,
                control,
            } => {
                let bulk = {
                    let connection = connection.clone();
                    Pipe::new(&self.ex, async move { connection.open_uni().await.ok() })
                };
                let control = Pipe::new(&self.ex, async move { Some(control) });
                let connection = Connection {
                    identity,
                    connection,
                    control,
                    bulk,
                };
                self.serving.admit(link, connection, Instant::now());
            }
            Inbound::Frame(link, frame) => {
                self.serving
                    .receive(link, &frame, now, |c| c.identity.as_deref());
            }
            Inbound::Closed(link) => {
                self.serving.connections.remove(link);
            }
        }
    }
}
