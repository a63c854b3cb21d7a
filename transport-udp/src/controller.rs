//! The AC on one UDP socket.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use pcxses_core::controller::ControllerCommand;
use pcxses_core::{Controller, ControllerEvent, Epoch, LinkId, Output, Stats, MAX_BOTTLE_LEN};
use smol::channel::{bounded, Receiver, Sender};
use smol::future::FutureExt;
use smol::{Async, Executor, Task};

use crate::link::Links;
use crate::socket;
use crate::EVENT_QUEUE;

/// The running AC: its events, its commands, and the task that drives it.
pub struct ControllerHandle {
    /// Protocol events, in order.
    pub events: Receiver<ControllerEvent>,
    /// Commands to the controller.
    pub commands: Sender<ControllerCommand>,
    /// The socket's address.
    pub local_addr: SocketAddr,
    /// The controller's counters, refreshed after every input.
    pub stats: Arc<Mutex<Stats>>,
    /// The driving task; it ends when `commands` is closed, with the final counters.
    pub task: Task<io::Result<Stats>>,
}

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
    let (event_tx, events) = bounded(EVENT_QUEUE);
    let (commands, command_rx) = bounded(64);
    let stats = Arc::new(Mutex::new(Stats::default()));
    let task = ex.spawn(run(
        controller,
        epoch,
        socket,
        v6_links,
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

/// IPv6 peers an AC has link ids for at once, by default.
pub const V6_LINKS: usize = 65_536;

/// Datagrams handled per wake-up before timers and commands get a turn.
const BATCH: usize = 256;

enum Wake {
    Datagram(io::Result<(usize, SocketAddr)>),
    Timer,
    Command(Option<ControllerCommand>),
}

async fn run(
    mut ac: Controller,
    epoch: Epoch,
    socket: Async<std::net::UdpSocket>,
    v6_links: usize,
    events: Sender<ControllerEvent>,
    commands: Receiver<ControllerCommand>,
    shared: Arc<Mutex<Stats>>,
) -> io::Result<Stats> {
    let mut links = Links::new(v6_links);
    let mut buf = vec![0u8; MAX_BOTTLE_LEN];
    let mut dropped_events = 0u64;
    // Links of refused datagrams, released once what the controller queued is sent.
    let mut refused = Vec::with_capacity(BATCH);
    let mut wake_at = drain(&mut ac, &socket, &links, &events, &mut dropped_events).await;
    loop {
        let timer = async {
            crate::until(epoch, wake_at).await;
            Wake::Timer
        };
        // Commands and timers first: under a steady stream of datagrams they still get
        // their turn.
        let wake = async { Wake::Command(commands.recv().await.ok()) }
            .or(timer)
            .or(async { Wake::Datagram(socket.recv_from(&mut buf).await) })
            .await;
        match wake {
            Wake::Datagram(Ok((n, from))) => {
                receive(&mut ac, &mut links, &mut refused, epoch, from, &buf[..n]);
                // More are probably waiting: take a bounded batch without waiting, and
                // drain once for all of it (one journal commit per batch).
                for _ in 1..BATCH {
                    match socket.get_ref().recv_from(&mut buf) {
                        Ok((n, from)) => {
                            receive(&mut ac, &mut links, &mut refused, epoch, from, &buf[..n]);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            tracing::debug!(error = %e, "receive failed");
                            break;
                        }
                    }
                }
            }
            Wake::Datagram(Err(e)) => tracing::debug!(error = %e, "receive failed"),
            Wake::Timer => {}
            Wake::Command(Some(command)) => {
                if let Err(e) = command.apply(&mut ac, epoch.now()) {
                    tracing::warn!(?command, error = %e, "command refused");
                }
            }
            Wake::Command(None) => {
                if dropped_events > 0 {
                    tracing::warn!(
                        dropped_events,
                        "events dropped: the application fell behind"
                    );
                }
                return Ok(*ac.stats());
            }
        }
        let now = epoch.now();
        if wake_at <= now {
            ac.handle_timeout(now);
        }
        wake_at = drain(&mut ac, &socket, &links, &events, &mut dropped_events).await;
        for link in refused.drain(..) {
            links.release_unaccepted(link);
        }
        if let Ok(mut s) = shared.lock() {
            *s = *ac.stats();
        }
        // Let the application's tasks (events, signals) run between batches.
        smol::future::yield_now().await;
    }
}

/// Hands one datagram to the controller; the link of a refused one goes to `refused`.
fn receive(
    ac: &mut Controller,
    links: &mut Links,
    refused: &mut Vec<LinkId>,
    epoch: Epoch,
    from: SocketAddr,
    bytes: &[u8],
) {
    let link = links.link(from);
    match ac.handle_receive(epoch.now(), link, bytes, None) {
        Ok(()) => links.accepted(link),
        Err(e) => {
            tracing::trace!(%from, error = %e, "refused a datagram");
            refused.push(link);
        }
    }
}

/// Sends what the controller wants sent and forwards its events; returns its next timeout.
async fn drain(
    ac: &mut Controller,
    socket: &Async<std::net::UdpSocket>,
    links: &Links,
    events: &Sender<ControllerEvent>,
    dropped_events: &mut u64,
) -> pcxses_core::Instant {
    loop {
        match ac.poll_output() {
            Output::Transmit(t) => {
                if let Some(addr) = links.addr(t.to) {
                    if let Err(e) = socket::send_to(socket, t.bytes, addr).await {
                        tracing::debug!(%addr, error = %e, "send failed");
                    }
                }
            }
            Output::Event(e) => {
                if events.try_send(e).is_err() {
                    *dropped_events += 1;
                }
            }
            Output::Timeout(at) => return at,
        }
    }
}
