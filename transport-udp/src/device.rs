//! A device agent on a UDP socket connected to the AC.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use pcxses_core::device::DeviceCommand;
use pcxses_core::{Device, DeviceEvent, Epoch, Output, SharedLease, Stats, MAX_BOTTLE_LEN};
use smol::channel::{bounded, Receiver, Sender};
use smol::future::FutureExt;
use smol::{Async, Executor, Task};

use crate::{socket, EVENT_QUEUE};

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

/// Connects a UDP socket to the AC at `ac` and drives `device` on it.
pub async fn spawn_device(
    ex: &Arc<Executor<'static>>,
    device: Device,
    epoch: Epoch,
    ac: SocketAddr,
) -> io::Result<DeviceHandle> {
    let local: SocketAddr = if ac.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
        .parse()
        .expect("literal");
    let socket = socket::bind(local)?;
    socket.get_ref().connect(ac)?;
    let (event_tx, events) = bounded(EVENT_QUEUE);
    let (commands, command_rx) = bounded(256);
    let lease = SharedLease::default();
    let task = ex.spawn(run(
        device,
        epoch,
        socket,
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

enum Wake {
    Datagram(io::Result<usize>),
    Timer,
    Command(Option<DeviceCommand>),
}

async fn run(
    mut device: Device,
    epoch: Epoch,
    socket: Async<std::net::UdpSocket>,
    lease: SharedLease,
    events: Sender<DeviceEvent>,
    commands: Receiver<DeviceCommand>,
) -> io::Result<Stats> {
    let mut buf = vec![0u8; MAX_BOTTLE_LEN];
    loop {
        // The lease as the last input left it, before its events reach the application.
        lease.publish(device.lease_until());
        let wake_at = drain(&mut device, &socket, &events).await;
        lease.publish(device.lease_until());
        let timer = async {
            crate::until(epoch, wake_at).await;
            Wake::Timer
        };
        let wake = async { Wake::Command(commands.recv().await.ok()) }
            .or(timer)
            .or(async { Wake::Datagram(socket.recv(&mut buf).await) })
            .await;
        let now = epoch.now();
        match wake {
            Wake::Datagram(Ok(n)) => {
                if let Err(e) = device.handle_receive(now, &buf[..n]) {
                    tracing::debug!(error = %e, "refused a datagram");
                }
            }
            // An ICMP error from an AC that is not up yet: keep going, retries follow.
            Wake::Datagram(Err(e)) => tracing::debug!(error = %e, "receive failed"),
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

async fn drain(
    device: &mut Device,
    socket: &Async<std::net::UdpSocket>,
    events: &Sender<DeviceEvent>,
) -> pcxses_core::Instant {
    loop {
        match device.poll_output() {
            Output::Transmit(t) => {
                if let Err(e) = socket.send(t.bytes).await {
                    tracing::debug!(error = %e, "send failed");
                }
            }
            Output::Event(e) => {
                // The application must see every Stop: wait for room rather than drop.
                if events.send(e).await.is_err() {
                    tracing::debug!("event receiver gone");
                }
            }
            Output::Timeout(at) => return at,
        }
    }
}
