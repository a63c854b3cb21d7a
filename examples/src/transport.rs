//! Choosing a transport on the command line and running a machine on it.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use pcxses_core::controller::ControllerCommand;
use pcxses_core::device::DeviceCommand;
use pcxses_core::{Controller, ControllerEvent, Device, DeviceEvent, Epoch, Stats};
use smol::channel::{Receiver, Sender};
use smol::{Executor, Task};

/// The transports a program can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// Length-prefixed frames over TCP.
    Tcp,
    /// One bottle per UDP datagram.
    Udp,
}

/// A running AC, whatever the transport.
pub struct RunningController {
    /// Protocol events.
    pub events: Receiver<ControllerEvent>,
    /// Commands to the controller; closing it stops the controller.
    pub commands: Sender<ControllerCommand>,
    /// The address it listens on.
    pub local_addr: SocketAddr,
    /// Its counters, refreshed as it runs.
    pub stats: Arc<Mutex<Stats>>,
    /// The task driving it.
    pub task: Task<io::Result<Stats>>,
}

/// A running device agent, whatever the transport.
pub struct RunningDevice {
    /// Protocol events.
    pub events: Receiver<DeviceEvent>,
    /// Commands to the agent; closing it stops the agent.
    pub commands: Sender<DeviceCommand>,
    /// The task driving it.
    pub task: Task<io::Result<Stats>>,
}

impl Transport {
    /// Serves `controller` on `addr`, in tasks of `ex`.
    pub async fn serve(
        self,
        ex: &Arc<Executor<'static>>,
        controller: Controller,
        epoch: Epoch,
        addr: SocketAddr,
    ) -> io::Result<RunningController> {
        Ok(match self {
            Transport::Tcp => {
                let h = pcxses_transport_tcp::spawn_controller(ex, controller, epoch, addr).await?;
                RunningController {
                    events: h.events,
                    commands: h.commands,
                    local_addr: h.local_addr,
                    stats: h.stats,
                    task: h.task,
                }
            }
            Transport::Udp => {
                let h = pcxses_transport_udp::spawn_controller(ex, controller, epoch, addr).await?;
                RunningController {
                    events: h.events,
                    commands: h.commands,
                    local_addr: h.local_addr,
                    stats: h.stats,
                    task: h.task,
                }
            }
        })
    }

    /// Runs `device` against the AC at `ac`, in tasks of `ex`.
    pub async fn connect(
        self,
        ex: &Arc<Executor<'static>>,
        device: Device,
        epoch: Epoch,
        ac: SocketAddr,
    ) -> io::Result<RunningDevice> {
        Ok(match self {
            Transport::Tcp => {
                let h = pcxses_transport_tcp::spawn_device(ex, device, epoch, ac).await?;
                RunningDevice {
                    events: h.events,
                    commands: h.commands,
                    task: h.task,
                }
            }
            Transport::Udp => {
                let h = pcxses_transport_udp::spawn_device(ex, device, epoch, ac).await?;
                RunningDevice {
                    events: h.events,
                    commands: h.commands,
                    task: h.task,
                }
            }
        })
    }
}
