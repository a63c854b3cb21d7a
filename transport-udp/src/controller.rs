//! The AC on one UDP socket.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use pcxses_core::controller::ControllerCommand;
use pcxses_core::{Controller, ControllerEvent, Epoch, Input, Output, Stats, MAX_BOTTLE_LEN};
use smol::channel::{bounded, Receiver, Sender};
use smol::future::FutureExt;
use smol::net::UdpSocket;
use smol::{Executor, Task, Timer};

use crate::link::Links;
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

/// Binds `addr` and drives `controller` on it in a task of `ex`.
pub async fn spawn_controller(
    ex: &Arc<Executor<'static>>,
    controller: Controller,
    epoch: Epoch,
    addr: SocketAddr,
) -> io::Result<ControllerHandle> {
    let socket = UdpSocket::bind(addr).await?;
    let local_addr = socket.local_addr()?;
    let (event_tx, events) = bounded(EVENT_QUEUE);
    let (commands, command_rx) = bounded(64);
    let stats = Arc::new(Mutex::new(Stats::default()));
    let task = ex.spawn(run(
        controller,
        epoch,
        socket,
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

enum Wake {
    Datagram(io::Result<(usize, SocketAddr)>),
    Timer,
    Command(Option<ControllerCommand>),
}

async fn run(
    mut ac: Controller,
    epoch: Epoch,
    socket: UdpSocket,
    events: Sender<ControllerEvent>,
    commands: Receiver<ControllerCommand>,
    shared: Arc<Mutex<Stats>>,
) -> io::Result<Stats> {
    let mut links = Links::new(65_536);
    let mut buf = vec![0u8; MAX_BOTTLE_LEN];
    let mut dropped_events = 0u64;
    loop {
        let wake_at = drain(&mut ac, &socket, &links, &events, &mut dropped_events).await;
        let timer = async {
            match epoch.to_std(wake_at) {
                Some(at) => Timer::at(at).await,
                None => Timer::never().await,
            };
            Wake::Timer
        };
        let wake = async { Wake::Datagram(socket.recv_from(&mut buf).await) }
            .or(async { Wake::Command(commands.recv().await.ok()) })
            .or(timer)
            .await;
        let now = epoch.now();
        if let Ok(mut s) = shared.lock() {
            *s = *ac.stats();
        }
        match wake {
            Wake::Datagram(Ok((n, from))) => {
                let Some(link) = links.link(from) else {
                    continue;
                };
                let input = Input::Receive {
                    now,
                    from: link,
                    bytes: &buf[..n],
                    identity: None,
                };
                if let Err(e) = ac.handle_input(input) {
                    tracing::debug!(%from, error = %e, "refused a datagram");
                }
            }
            Wake::Datagram(Err(e)) => tracing::warn!(error = %e, "receive failed"),
            Wake::Timer => {
                let _ = ac.handle_input(Input::Timeout(now));
            }
            Wake::Command(Some(command)) => {
                if let Err(e) = command.apply(&mut ac, now) {
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
    }
}

/// Sends what the controller wants sent and forwards its events; returns its next timeout.
async fn drain(
    ac: &mut Controller,
    socket: &UdpSocket,
    links: &Links,
    events: &Sender<ControllerEvent>,
    dropped_events: &mut u64,
) -> pcxses_core::Instant {
    loop {
        match ac.poll_output() {
            Output::Transmit(t) => {
                if let Some(addr) = links.addr(t.to) {
                    if let Err(e) = socket.send_to(t.bytes, addr).await {
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
