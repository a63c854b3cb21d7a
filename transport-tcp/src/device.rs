//! A device agent on a TCP connection to the AC, reconnecting as needed.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pcxses_core::device::DeviceCommand;
use pcxses_core::frame::push_frame;
use pcxses_core::{Device, DeviceEvent, Epoch, LinkId, Output, SharedLease, Stats};
use smol::channel::{bounded, Receiver, Sender};
use smol::future::FutureExt;
use smol::io::AsyncWriteExt;
use smol::net::TcpStream;
use smol::{Executor, Task, Timer};

use crate::reader::{read_frames, Inbound};
use crate::EVENT_QUEUE;

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The running device agent: its events, its commands, and the task that drives it.
pub struct DeviceHandle {
    /// Protocol events, in order. [`DeviceEvent::Stop`] must be acted on at once.
    pub events: Receiver<DeviceEvent>,
    /// Commands to the agent.
    pub commands: Sender<DeviceCommand>,
    /// The device's fence lease ([`Device::lease_until`]), published after every input and
    /// every drain of its output: check it before every step of a computation.
    pub lease: SharedLease,
    /// The task; it ends when `commands` is closed, with the final counters.
    pub task: Task<io::Result<Stats>>,
}

/// Drives `device` over TCP to the AC at `ac`, connecting in the background.
pub async fn spawn_device(
    ex: &Arc<Executor<'static>>,
    device: Device,
    epoch: Epoch,
    ac: SocketAddr,
) -> io::Result<DeviceHandle> {
    let (event_tx, events) = bounded(EVENT_QUEUE);
    let (commands, command_rx) = bounded(256);
    let lease = SharedLease::default();
    let task = ex.spawn(run(
        ex.clone(),
        device,
        epoch,
        ac,
        lease.clone(),
        event_tx,
        command_rx,
    ));
    Ok(DeviceHandle {
        events,
        commands,
        lease,
        task,
    })
}

/// Connects, retrying with exponential backoff and ±50% jitter, and reports the stream as
/// connection number `n`.
async fn connect(ac: SocketAddr, seed: u64, n: u64, inbound: Sender<Inbound>) {
    let mut backoff = BACKOFF_MIN;
    let mut jitter = seed | 1;
    loop {
        match TcpStream::connect(ac).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                let _ = inbound.send(Inbound::Opened(LinkId(n), stream)).await;
                return;
            }
            Err(e) => tracing::debug!(%ac, error = %e, "connect failed"),
        }
        jitter ^= jitter << 13;
        jitter ^= jitter >> 7;
        jitter ^= jitter << 17;
        let factor = 0.5 + (jitter % 1000) as f64 / 1000.0;
        Timer::after(backoff.mul_f64(factor)).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

enum Wake {
    Inbound(Inbound),
    Timer,
    Command(Option<DeviceCommand>),
}

async fn run(
    ex: Arc<Executor<'static>>,
    mut device: Device,
    epoch: Epoch,
    ac: SocketAddr,
    lease: SharedLease,
    events: Sender<DeviceEvent>,
    commands: Receiver<DeviceCommand>,
) -> io::Result<Stats> {
    let (inbound_tx, inbound) = bounded(1_024);
    let mut seed = epoch.now().as_micros();
    let mut connections = 1u64;
    let mut connecting = Some(ex.spawn(connect(ac, seed, connections, inbound_tx.clone())));
    // The current connection: its number, the stream, and its reader.
    let mut stream: Option<(LinkId, TcpStream, Task<()>)> = None;
    let mut frame = Vec::new();
    // Whether a connection opened yet.
    let mut connected = false;
    loop {
        // The lease as the last input left it, before its events reach the application.
        lease.publish(device.lease_until());
        let wake_at = loop {
            match device.poll_output() {
                Output::Transmit(t) => {
                    if let Some((_, s, _)) = stream.as_mut() {
                        frame.clear();
                        push_frame(t.bytes, &mut frame);
                        if s.write_all(&frame).await.is_err() {
                            stream = None;
                        }
                    }
                }
                Output::Event(e) => {
                    // The application must see every Stop: wait for room rather than drop.
                    let _ = events.send(e).await;
                }
                Output::Timeout(at) => break at,
            }
        };
        lease.publish(device.lease_until());
        if stream.is_none() && connecting.is_none() {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            connections += 1;
            connecting = Some(ex.spawn(connect(ac, seed, connections, inbound_tx.clone())));
        }
        let timer = async {
            // Before the first connection nothing can reach the AC and no session exists:
            // the first GOOD_MORNING waits for the connection, so that the join's lease is
            // counted from a GOOD_MORNING that left.
            if !connected {
                smol::future::pending::<()>().await;
            }
            crate::until(epoch, wake_at).await;
            Wake::Timer
        };
        let wake = async { Wake::Command(commands.recv().await.ok()) }
            .or(timer)
            .or(async { Wake::Inbound(inbound.recv().await.expect("run holds a sender")) })
            .await;
        let now = epoch.now();
        match wake {
            Wake::Inbound(Inbound::Opened(link, s)) => {
                connecting = None;
                connected = true;
                let reader = ex.spawn(read_frames(
                    s.clone(),
                    link,
                    pcxses_core::MAX_BOTTLE_LEN,
                    inbound_tx.clone(),
                ));
                stream = Some((link, s, reader));
                tracing::debug!(%ac, "connected");
                // A session carried on from an earlier connection moves to this one.
                device.relink(now);
            }
            Wake::Inbound(Inbound::Frame(_, bytes)) => {
                if let Err(e) = device.handle_receive(now, &bytes) {
                    tracing::debug!(error = %e, "refused a frame");
                }
            }
            Wake::Inbound(Inbound::Closed(link)) => {
                if stream
                    .as_ref()
                    .is_some_and(|(current, _, _)| *current == link)
                {
                    tracing::debug!(%ac, "connection lost");
                    stream = None;
                }
            }
            Wake::Timer => {
                device.handle_timeout(now);
            }
            Wake::Command(Some(command)) => {
                if let Err(e) = command.apply(&mut device, now) {
                    tracing::warn!(error = %e, "command refused");
                }
            }
            Wake::Command(None) => return Ok(*device.stats()),
        }
    }
}
