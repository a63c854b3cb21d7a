//! Choosing a transport on the command line and running a machine on it.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pcxses_core::controller::ControllerCommand;
use pcxses_core::device::DeviceCommand;
use pcxses_core::{Controller, ControllerEvent, Device, DeviceEvent, Epoch, SharedLease, Stats};
use pcxses_transport_quic::{ClientTls, ServerTls};
use pcxses_transport_tcp::ConnectionLimits;
use smol::channel::{Receiver, Sender};
use smol::{Executor, Task};

/// The transports a program can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// Length-prefixed frames over TCP.
    Tcp,
    /// One bottle per UDP datagram.
    Udp,
    /// QUIC with mutual TLS: certificates name the devices.
    Quic,
}

/// The AC's TLS files, for `--transport quic` (`pcxses-ac certs` makes them).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct AcTlsArgs {
    /// The AC's certificate chain (PEM).
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// The AC's private key (PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The CA that device certificates must chain to (PEM).
    #[arg(long)]
    pub device_ca: Option<PathBuf>,
}

impl AcTlsArgs {
    /// The TLS settings, when all three files are given.
    pub fn load(&self) -> Result<ServerTls, String> {
        match (&self.cert, &self.key, &self.device_ca) {
            (Some(cert), Some(key), Some(ca)) => {
                ServerTls::from_pem_files(cert, key, ca).map_err(|e| e.to_string())
            }
            _ => Err("QUIC needs --cert, --key and --device-ca".into()),
        }
    }
}

/// A device's TLS files, for `--transport quic`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct DeviceTlsArgs {
    /// The AC's CA (PEM): the only root the device trusts.
    #[arg(long)]
    pub ac_ca: Option<PathBuf>,
    /// The name the AC's certificate must be valid for.
    #[arg(long, default_value = "ac")]
    pub ac_name: String,
    /// The device's certificate chain (PEM); it must name the device.
    #[arg(long)]
    pub cert: Option<PathBuf>,
    /// The device's private key (PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
}

impl DeviceTlsArgs {
    /// The TLS settings, when all three files are given.
    pub fn load(&self) -> Result<ClientTls, String> {
        match (&self.ac_ca, &self.cert, &self.key) {
            (Some(ca), Some(cert), Some(key)) => {
                ClientTls::from_pem_files(ca, &self.ac_name, cert, key).map_err(|e| e.to_string())
            }
            _ => Err("QUIC needs --ac-ca, --cert and --key".into()),
        }
    }
}

/// The bounds an AC's transport keeps against hostile peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportLimits {
    /// TCP and QUIC: connections, handshakes, deadlines.
    pub connections: ConnectionLimits,
    /// UDP: IPv6 source addresses with a link id at once.
    pub v6_links: usize,
}

impl Default for TransportLimits {
    fn default() -> Self {
        TransportLimits {
            connections: ConnectionLimits::default(),
            v6_links: pcxses_transport_udp::V6_LINKS,
        }
    }
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
    /// The fence lease its driver publishes: a computation may step only while it permits
    /// the time of the step.
    pub lease: SharedLease,
    /// The task driving it.
    pub task: Task<io::Result<Stats>>,
}

impl Transport {
    /// The transport's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Quic => "quic",
        }
    }

    /// Serves `controller` on `addr` within `limits`, in tasks of `ex`; QUIC needs `tls`.
    pub async fn serve(
        self,
        ex: &Arc<Executor<'static>>,
        controller: Controller,
        epoch: Epoch,
        addr: SocketAddr,
        tls: Option<&ServerTls>,
        limits: TransportLimits,
    ) -> io::Result<RunningController> {
        // Every adapter's handle has the same fields.
        macro_rules! running {
            ($h:expr) => {{
                let h = $h.await?;
                RunningController {
                    events: h.events,
                    commands: h.commands,
                    local_addr: h.local_addr,
                    stats: h.stats,
                    task: h.task,
                }
            }};
        }
        Ok(match self {
            Transport::Quic => {
                let tls = tls.ok_or_else(|| io::Error::other("QUIC needs TLS settings"))?;
                running!(pcxses_transport_quic::spawn_controller_with(
                    ex,
                    controller,
                    epoch,
                    addr,
                    tls,
                    limits.connections
                ))
            }
            Transport::Tcp => {
                running!(pcxses_transport_tcp::spawn_controller_with(
                    ex,
                    controller,
                    epoch,
                    addr,
                    limits.connections
                ))
            }
            Transport::Udp => {
                running!(pcxses_transport_udp::spawn_controller_with(
                    ex,
                    controller,
                    epoch,
                    addr,
                    limits.v6_links
                ))
            }
        })
    }

    /// Runs `device` against the AC at `ac`, in tasks of `ex`; QUIC needs `tls`.
    pub async fn connect(
        self,
        ex: &Arc<Executor<'static>>,
        device: Device,
        epoch: Epoch,
        ac: SocketAddr,
        tls: Option<&ClientTls>,
    ) -> io::Result<RunningDevice> {
        // Every adapter's handle has the same fields.
        macro_rules! running {
            ($h:expr) => {{
                let h = $h.await?;
                RunningDevice {
                    events: h.events,
                    commands: h.commands,
                    lease: h.lease,
                    task: h.task,
                }
            }};
        }
        Ok(match self {
            Transport::Quic => {
                let tls = tls.ok_or_else(|| io::Error::other("QUIC needs TLS settings"))?;
                running!(pcxses_transport_quic::spawn_device(
                    ex, device, epoch, ac, tls
                ))
            }
            Transport::Tcp => running!(pcxses_transport_tcp::spawn_device(ex, device, epoch, ac)),
            Transport::Udp => running!(pcxses_transport_udp::spawn_device(ex, device, epoch, ac)),
        })
    }
}
