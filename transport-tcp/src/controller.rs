//! The AC on a TCP listener.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use pcxses_core::controller::ControllerCommand;
use pcxses_core::frame::push_frame;
use pcxses_core::{Controller, ControllerEvent, Epoch, Input, LinkId, Output, Stats};
use smol::channel::{bounded, Receiver, Sender};
use smol::future::FutureExt;
use smol::io::AsyncWriteExt;
use smol::net::{TcpListener, TcpStream};
use smol::{Executor, Task};

use crate::reader::{read_frames, Inbound};
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
    /// The driving task; it ends when `commands` is closed, with the final counters.
    pub task: Task<io::Result<Stats>>,
}

/// Listens on `addr` and drives `controller` for every connection, in a task of
/// `ex`. Incoming frames are bounded by the largest bottle any framing carries.
pub async fn spawn_controller(
    ex: &Arc<Executor<'static>>,
    controller: Controller,
    epoch: Epoch,
    addr: SocketAddr,
) -> io::Result<ControllerHandle> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let (event_tx, events) = bounded(EVENT_QUEUE);
    let (commands, command_rx) = bounded(64);
    let stats = Arc::new(Mutex::new(Stats::default()));
    let task = ex.spawn(run(
        ex.clone(),
        controller,
        epoch,
        listener,
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
    Inbound(Inbound),
    Timer,
    Command(Option<ControllerCommand>),
}

async fn accept(listener: TcpListener, inbound: Sender<Inbound>) {
    let mut next = 0u64;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                next += 1;
                let _ = stream.set_nodelay(true);
                tracing::debug!(%peer, link = next, "connection");
                if inbound
                    .send(Inbound::Opened(LinkId(next), stream))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => tracing::warn!(error = %e, "accept failed"),
        }
    }
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

async fn run(
    ex: Arc<Executor<'static>>,
    mut ac: Controller,
    epoch: Epoch,
    listener: TcpListener,
    events: Sender<ControllerEvent>,
    commands: Receiver<ControllerCommand>,
    shared: Arc<Mutex<Stats>>,
) -> io::Result<Stats> {
    let max_frame = pcxses_core::MAX_BOTTLE_LEN;
    let (inbound_tx, inbound) = bounded(4_096);
    let _acceptor = ex.spawn(accept(listener, inbound_tx.clone()));
    let mut connections: HashMap<LinkId, Connection> = HashMap::new();
    let mut dropped = 0u64;
    loop {
        let wake_at = loop {
            match ac.poll_output() {
                Output::Transmit(t) => {
                    if connections.get(&t.to).is_some_and(|c| !c.push(t.bytes)) {
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
            .or(async { Wake::Inbound(inbound.recv().await.expect("the acceptor holds a sender")) })
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
                        Inbound::Opened(link, stream) => {
                            let (wake, woken) = bounded(1);
                            let pending = Arc::new(Mutex::new(Vec::new()));
                            let connection = Connection {
                                pending: pending.clone(),
                                wake,
                                _writer: ex.spawn(write_frames(stream.clone(), pending, woken)),
                                _reader: ex.spawn(read_frames(
                                    stream,
                                    link,
                                    max_frame,
                                    inbound_tx.clone(),
                                )),
                            };
                            connections.insert(link, connection);
                        }
                        Inbound::Frame(link, frame) => {
                            if let Err(e) = ac.handle_input(Input::Receive {
                                now,
                                from: link,
                                bytes: &frame,
                                identity: None,
                            }) {
                                tracing::debug!(?link, error = %e, "refused a frame");
                            }
                        }
                        Inbound::Closed(link) => {
                            connections.remove(&link);
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
                return Ok(*ac.stats());
            }
        }
        // Let the connections' and the application's tasks run between inputs.
        smol::future::yield_now().await;
    }
}
