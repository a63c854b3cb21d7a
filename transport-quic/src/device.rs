//! A device agent on a QUIC connection to the AC, reconnecting as needed.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pcxses_core::device::DeviceCommand;
use pcxses_core::frame::push_frame;
use pcxses_core::{Device, DeviceEvent, Epoch, LinkId, Output, SharedLease, Stats};
use smol::channel::{bounded, Receiver, Sender};
use smol::future::FutureExt;
use smol::{Executor, Task, Timer};

use crate::stream::{read_frames, Inbound};
use crate::tls::ClientTls;
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

/// Drives `device` over QUIC to the AC at `ac` with `tls`, connecting in the background.
pub async fn spawn_device(
    ex: &Arc<Executor<'static>>,
    device: Device,
    epoch: Epoch,
    ac: SocketAddr,
    tls: &ClientTls,
) -> io::Result<DeviceHandle> {
    let config = tls.quinn_config().map_err(io::Error::other)?;
    let any: SocketAddr = if ac.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let mut endpoint = crate::endpoint(any, None)?;
    endpoint.set_default_client_config(config);
    let (event_tx, events) = bounded(EVENT_QUEUE);
    let (commands, command_rx) = bounded(256);
    let target = Target {
        endpoint,
        ac,
        name: tls.ac_name.clone(),
    };
    let lease = SharedLease::default();
    let task = ex.spawn(run(
        ex.clone(),
        device,
        epoch,
        target,
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

/// Where and how to connect.
#[derive(Clone)]
struct Target {
    endpoint: quinn::Endpoint,
    ac: SocketAddr,
    name: String,
}

/// Connects, retrying with exponential backoff and ±50% jitter, opens the control stream,
/// and reads the connection as link `n` until it ends.
async fn connect(
    ex: Arc<Executor<'static>>,
    to: Target,
    seed: u64,
    n: u64,
    inbound: Sender<Inbound>,
) {
    let link = LinkId(n);
    let mut backoff = BACKOFF_MIN;
    let mut jitter = seed | 1;
    let (connection, control, recv) = loop {
        let attempt = async {
            let connection = to
                .endpoint
                .connect(to.ac, &to.name)
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())?;
            let (control, recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((connection, control, recv))
        };
        match attempt.await {
            Ok(up) => break up,
            Err(e) => tracing::debug!(ac = %to.ac, error = %e, "connect failed"),
        }
        jitter ^= jitter << 13;
        jitter ^= jitter >> 7;
        jitter ^= jitter << 17;
        let factor = 0.5 + (jitter % 1000) as f64 / 1000.0;
        Timer::after(backoff.mul_f64(factor)).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    };
    let opened = Inbound::Opened {
        link,
        identity: None,
        connection: connection.clone(),
        control,
    };
    if inbound.send(opened).await.is_err() {
        return;
    }
    let _control = ex.spawn(read_frames(recv, link, inbound.clone()));
    // The AC's bulk streams: MORPH object chunks.
    let mut bulk = Vec::new();
    while let Ok(recv) = connection.accept_uni().await {
        bulk.push(ex.spawn(read_frames(recv, link, inbound.clone())));
    }
    let _ = inbound.send(Inbound::Closed(link)).await;
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
    target: Target,
    lease: SharedLease,
    events: Sender<DeviceEvent>,
    commands: Receiver<DeviceCommand>,
) -> io::Result<Stats> {
    let (inbound_tx, inbound) = bounded(1_024);
    let mut seed = epoch.now().as_micros();
    let mut connections = 1u64;
    let mut connecting: Option<Task<()>> = Some(ex.spawn(connect(
        ex.clone(),
        target.clone(),
        seed,
        connections,
        inbound_tx.clone(),
    )));
    // The current connection: its link, the connection and its control stream.
    let mut current: Option<(LinkId, quinn::Connection, quinn::SendStream)> = None;
    let mut frame = Vec::new();
    // Whether a connection opened yet.
    let mut connected = false;
    loop {
        // The lease as the last input left it, before its events reach the application.
        lease.publish(device.lease_until());
        let wake_at = loop {
            match device.poll_output() {
                Output::Transmit(t) => {
                    if let Some((_, _, control)) = current.as_mut() {
                        frame.clear();
                        push_frame(t.bytes, &mut frame);
                        if control.write_all(&frame).await.is_err() {
                            current = None;
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
        if current.is_none() && connecting.is_none() {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            connections += 1;
            connecting = Some(ex.spawn(connect(
                ex.clone(),
                target.clone(),
                seed,
                connections,
                inbound_tx.clone(),
            )));
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
            Wake::Inbound(Inbound::Opened {
                link,
                connection,
                control,
                ..
            }) => {
                tracing::debug!(ac = %target.ac, "connected");
                connected = true;
                current = Some((link, connection, control));
            }
            Wake::Inbound(Inbound::Frame(link, bytes)) => {
                if current.as_ref().is_some_and(|(l, _, _)| *l == link) {
                    if let Err(e) = device.handle_receive(now, &bytes) {
                        tracing::debug!(error = %e, "refused a frame");
                    }
                }
            }
            Wake::Inbound(Inbound::Closed(link)) => {
                if current.as_ref().is_some_and(|(l, _, _)| *l == link) {
                    tracing::debug!(ac = %target.ac, "connection lost");
                    current = None;
                    connecting = None;
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
            Wake::Command(None) => {
                if let Some((_, connection, _)) = current {
                    connection.close(0u32.into(), b"leaving");
                }
                target
                    .endpoint
                    .wait_idle()
                    .or(async {
                        Timer::after(Duration::from_millis(200)).await;
                    })
                    .await;
                return Ok(*device.stats());
            }
        }
    }
}
