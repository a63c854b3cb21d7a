//! The AC's run loop, over whatever a transport receives from and sends to: a [`Port`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use pcxses_core::controller::ControllerCommand;
use pcxses_core::{Controller, ControllerEvent, Epoch, Instant, LinkId, Stats, Transmit};
use smol::channel::{bounded, Receiver};
use smol::future::FutureExt;
use smol::Executor;

use crate::drain::{drain, Events, Transmitter};
use crate::handle::ControllerHandle;
use crate::limits::ConnectionStats;
use crate::refusal::{Inputs, Refusals};
use crate::status::{StatusRequest, StatusSource};
use crate::timer::Alarm;
use crate::EVENT_QUEUE;

/// Inputs handed to the controller in one turn, at most, before it is drained: one drain
/// (with a journal, one commit) covers them all.
pub const BATCH: usize = 256;

/// Commands waiting for the AC, at most.
const COMMAND_QUEUE: usize = 64;

/// Refusals reported and not yet taken by the application, at most.
const REFUSAL_QUEUE: usize = 64;

/// Where an AC's bottles come from and go to: a socket, or the driver's connections
/// ([`crate::Server`]). The run loop takes its turns as follows: it drains the
/// controller through [`Port::send`], then calls [`Port::flush`] and [`Port::drained`]; it
/// waits for a command, the controller's timer, or [`Port::ready`], in that order of
/// priority; it applies what woke it, calls [`Port::turn`], and hands the controller what
/// [`Port::receive`] finds waiting, at most [`BATCH`] inputs; then it yields to the
/// executor's other tasks.
pub trait Port: Send + 'static {
    /// The address the AC serves on ([`ControllerHandle::local_addr`]).
    fn local_addr(&self) -> SocketAddr;

    /// Waits until input may be waiting (completing when none is, is harmless). Dropped
    /// when something else wakes the loop: it must lose nothing then.
    fn ready(&mut self) -> impl Future<Output = ()> + Send;

    /// Once a turn, before input is received: bookkeeping of the transport's own.
    fn turn(&mut self) {}

    /// Hands `inputs` one input that is waiting ([`Inputs::bottle`]), without waiting for
    /// one; `false` when none is waiting.
    fn receive(&mut self, inputs: &mut Inputs<'_>) -> bool;

    /// The address of the peer on `link`, while the transport knows it.
    fn peer_addr(&self, _link: LinkId) -> Option<SocketAddr> {
        None
    }

    /// Sends one of the controller's transmits, or queues it for [`Port::flush`] (or drops
    /// it: the core retransmits).
    fn send(&mut self, transmit: Transmit<'_>) -> impl Future<Output = ()> + Send;

    /// Sends what [`Port::send`] queued, in order, after each drain: a port that sends in
    /// batches sends its last one here. A port that sends at once has nothing to do (the
    /// default).
    fn flush(&mut self) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }

    /// Everything the last drain produced has been sent (or dropped).
    fn drained(&mut self) {}

    /// The counters of the connection bounds, for a transport with connections.
    fn connections(&self) -> Option<Arc<ConnectionStats>> {
        None
    }
}

/// Drives `controller` on `epoch`'s clock over `port` (an adapter's socket or listener,
/// already open), in a task of `ex`.
pub fn spawn_controller<P: Port>(
    ex: &Arc<Executor<'static>>,
    controller: Controller,
    epoch: Epoch,
    port: P,
) -> ControllerHandle {
    let (event_tx, events) = bounded(EVENT_QUEUE);
    let (commands, command_rx) = bounded(COMMAND_QUEUE);
    let (refusal_tx, refusals) = bounded(REFUSAL_QUEUE);
    let stats = Arc::new(Mutex::new(Stats::default()));
    let local_addr = port.local_addr();
    let connections = port.connections();
    let (status, status_rx) = StatusSource::new();
    let task = ex.spawn(run(
        controller,
        epoch,
        port,
        Events::dropping(event_tx),
        Refusals::new(refusal_tx),
        (command_rx, status_rx),
        stats.clone(),
    ));
    ControllerHandle {
        events,
        refusals,
        commands,
        local_addr,
        stats,
        connections,
        status,
        task,
    }
}

/// A port as the drain's destination.
struct Sending<'p, P>(&'p mut P);

impl<P: Port> Transmitter for Sending<'_, P> {
    fn transmit(&mut self, transmit: Transmit<'_>) -> impl Future<Output = ()> + Send {
        self.0.send(transmit)
    }
}

enum Wake {
    Command(Option<ControllerCommand>),
    Status(StatusRequest),
    Timer,
    Ready,
}

async fn run<P: Port>(
    mut ac: Controller,
    epoch: Epoch,
    mut port: P,
    mut events: Events<ControllerEvent>,
    mut refusals: Refusals,
    (commands, status): (Receiver<ControllerCommand>, Receiver<StatusRequest>),
    shared: Arc<Mutex<Stats>>,
) -> io::Result<Stats> {
    // Whether the last batch stopped at its bound: then more input is waiting.
    let mut more = false;
    let mut alarm = Alarm::new();
    loop {
        let wake_at = send_all(&mut ac, &mut port, &mut events).await;
        if let Ok(mut s) = shared.lock() {
            *s = *ac.stats();
        }
        // Commands and timers first: under a steady stream of input they still get
        // their turn.
        let wake = async { Wake::Command(commands.recv().await.ok()) }
            .or(async {
                // The source lives in the handle: this waits until a request comes.
                match status.recv().await {
                    Ok(request) => Wake::Status(request),
                    Err(_) => std::future::pending().await,
                }
            })
            .or(async {
                alarm.wait(epoch, wake_at).await;
                Wake::Timer
            })
            .or(async {
                if !more {
                    port.ready().await;
                }
                Wake::Ready
            })
            .await;
        let now = epoch.now();
        if wake_at <= now {
            ac.handle_timeout(now);
        }
        match wake {
            Wake::Command(Some(command)) => {
                if let Err(e) = command.apply(&mut ac, now) {
                    tracing::warn!(?command, error = %e, "command refused");
                }
            }
            Wake::Command(None) => {
                if events.dropped() > 0 {
                    tracing::warn!(
                        dropped = events.dropped(),
                        "events dropped: the application fell behind"
                    );
                }
                return Ok(*ac.stats());
            }
            // Answered between batches, without waiting on the asker.
            Wake::Status(request) => request.answer(&ac, &port, now),
            Wake::Timer | Wake::Ready => {}
        }
        let mut inputs = Inputs {
            ac: &mut ac,
            now,
            refusals: &mut refusals,
        };
        more = receive_batch(&mut port, &mut inputs);
        // Let the connections' and the application's tasks run between batches.
        smol::future::yield_now().await;
    }
}

/// Drains `ac` through `port`, transmits to the port and events to `events`, and lets the
/// port send the rest ([`Port::flush`], [`Port::drained`]). Returns when the controller's
/// timer is due.
pub(crate) async fn send_all<P: Port>(
    ac: &mut Controller,
    port: &mut P,
    events: &mut Events<ControllerEvent>,
) -> Instant {
    let wake_at = drain(ac, &mut Sending(&mut *port), events).await;
    port.flush().await;
    port.drained();
    wake_at
}

/// Begins a turn of `port` ([`Port::turn`]) and hands `inputs` what it has waiting, at
/// most [`BATCH`] inputs: whether it stopped at that bound (more may be waiting).
pub(crate) fn receive_batch<P: Port>(port: &mut P, inputs: &mut Inputs<'_>) -> bool {
    port.turn();
    (0..BATCH).all(|_| port.receive(inputs))
}
