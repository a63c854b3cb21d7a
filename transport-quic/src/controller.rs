//! The AC on a QUIC endpoint.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use pcxses_core::controller::ControllerCommand;
use pcxses_core::{Controller, ControllerEvent, Epoch, Input, LinkId, Output, Stats};
use smol::channel::{bounded, Receiver, Sender};
use smol::future::FutureExt;
use smol::{Executor, Task};

use crate::stream::{read_frames, Inbound, Pipe};
use crate::tls::{self, ServerTls};
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
    /// The driving task; it ends when `commands` is closed, with the final counters.
    pub task: Task<io::Result<Stats>>,
}

/// Serves QUIC on `addr` with `tls` and drives `controller` for every connection, in a
/// task of `ex`.
pub async fn spawn_controller(
    ex: &Arc<Executor<'static>>,
    controller: Controller,
    epoch: Epoch,
    addr: SocketAddr,
    tls: &ServerTls,
) -> io::Result<ControllerHandle> {
    let config = tls.quinn_config().map_err(io::Error::other)?;
    let endpoint = crate::endpoint(addr, Some(config))?;
    let local_addr = endpoint.local_addr()?;
    let (event_tx, events) = bounded(EVENT_QUEUE);
    let (commands, command_rx) = bounded(64);
    let stats = Arc::new(Mutex::new(Stats::default()));
    let task = ex.spawn(run(
        ex.clone(),
        controller,
        epoch,
        endpoint,
        event_tx,
        command_rx,
        stats.clone(),
    ));
    Ok(ControllerHandle {
        events,
        commands,
        local_addr,
        stats,
        task,
    })
}

/// One device's connection: its certified name and its two streams.
struct Connection {
    identity: Option<String>,
    connection: quinn::Connection,
    control: Pipe,
    bulk: Pipe,
}

/// Accepts connections; each completes its handshake and opens its control stream in a
/// task of its own.
async fn accept(ex: Arc<Executor<'static>>, endpoint: quinn::Endpoint, inbound: Sender<Inbound>) {
    let mut next = 0u64;
    while let Some(incoming) = endpoint.accept().await {
        next += 1;
        let link = LinkId(next);
        let inbound = inbound.clone();
        ex.spawn(async move {
            let connection = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(?link, error = %e, "handshake failed");
                    return;
                }
            };
            let Some(identity) = tls::identity(&connection) else {
                connection.close(1u32.into(), b"the certificate names no device");
                return;
            };
            let identity = Some(identity);
            let Ok((control, recv)) = connection.accept_bi().await else {
                return;
            };
            tracing::debug!(?link, ?identity, peer = %connection.remote_address(), "connection");
            let opened = Inbound::Opened {
                link,
                identity,
                connection: connection.clone(),
                control,
            };
            if inbound.send(opened).await.is_err() {
                return;
            }
            read_frames(recv, link, inbound.clone()).await;
            let _ = inbound.send(Inbound::Closed(link)).await;
        })
        .detach();
    }
}

enum Wake {
    Inbound(Inbound),
    Timer,
    Command(Option<ControllerCommand>),
}

/// Inbound frames handled before the controller is drained: one journal commit (one
/// sync) covers them all.
const BATCH: usize = 256;

async fn run(
    ex: Arc<Executor<'static>>,
    mut ac: Controller,
    epoch: Epoch,
    endpoint: quinn::Endpoint,
    events: Sender<ControllerEvent>,
    commands: Receiver<ControllerCommand>,
    shared: Arc<Mutex<Stats>>,
) -> io::Result<Stats> {
    let (inbound_tx, inbound) = bounded(4_096);
    let _acceptor = ex.spawn(accept(ex.clone(), endpoint.clone(), inbound_tx.clone()));
    let mut connections: HashMap<LinkId, Connection> = HashMap::new();
    let mut dropped = 0u64;
    loop {
        let wake_at = loop {
            match ac.poll_output() {
                Output::Transmit(t) => {
                    let Some(c) = connections.get(&t.to) else {
                        continue;
                    };
                    let pipe = if t.bytes.get(1) == Some(&OBJECT_CHUNK) {
                        &c.bulk
                    } else {
                        &c.control
                    };
                    if !pipe.push(t.bytes) {
                        dropped += 1;
                    }
                }
                Output::Event(e) => {
                    if events.try_send(e).is_err() {
                        dropped += 1;
                    }
                }
                Output::Timeout(at) => break at,
            }
        };
        let timer = async {
            crate::until(epoch, wake_at).await;
            Wake::Timer
        };
        // Commands and timers first: under a steady stream of frames they still get their
        // turn.
        let wake = async { Wake::Command(commands.recv().await.ok()) }
            .or(timer)
            .or(async { Wake::Inbound(inbound.recv().await.expect("run holds a sender")) })
            .await;
        let now = epoch.now();
        if wake_at <= now {
            let _ = ac.handle_input(Input::Timeout(now));
        }
        if let Ok(mut s) = shared.lock() {
            *s = *ac.stats();
        }
        match wake {
            // A batch of what came in, then one drain: with a journal, one commit.
            Wake::Inbound(first) => {
                let more = std::iter::from_fn(|| inbound.try_recv().ok());
                for item in std::iter::once(first).chain(more).take(BATCH) {
                    match item {
                        Inbound::Opened {
                            link,
                            identity,
                            connection,
                            control,
                        } => {
                            let bulk = {
                                let connection = connection.clone();
                                Pipe::new(&ex, async move { connection.open_uni().await.ok() })
                            };
                            let control = Pipe::new(&ex, async move { Some(control) });
                            connections.insert(
                                link,
                                Connection {
                                    identity,
                                    connection,
                                    control,
                                    bulk,
                                },
                            );
                        }
                        Inbound::Frame(link, frame) => {
                            let identity =
                                connections.get(&link).and_then(|c| c.identity.as_deref());
                            if let Err(e) = ac.handle_input(Input::Receive {
                                now,
                                from: link,
                                bytes: &frame,
                                identity,
                            }) {
                                tracing::debug!(?link, error = %e, "refused a frame");
                            }
                        }
                        Inbound::Closed(link) => {
                            if let Some(c) = connections.remove(&link) {
                                c.connection.close(0u32.into(), b"closed");
                            }
                        }
                    }
                }
            }
            Wake::Timer => {}
            Wake::Command(Some(command)) => {
                if let Err(e) = command.apply(&mut ac, now) {
                    tracing::warn!(?command, error = %e, "command refused");
                }
            }
            Wake::Command(None) => {
                if dropped > 0 {
                    tracing::warn!(
                        dropped,
                        "frames or events dropped: a peer or the application fell behind"
                    );
                }
                endpoint.close(0u32.into(), b"AC stopping");
                return Ok(*ac.stats());
            }
        }
        // Let the connections' and the application's tasks run between inputs.
        smol::future::yield_now().await;
    }
}
