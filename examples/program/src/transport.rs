//! Choosing a transport on the command line and running a machine on it.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use pcxses_core::{Controller, Device, Epoch};
pub use pcxses_driver::Acs;
use pcxses_driver::{
    spawn_controller, spawn_device, ConnectionLimits, ControllerHandle, DeviceHandle,
};
use pcxses_transport_quic::{ClientTls, ServerTls};
use smol::Executor;

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

/// A running AC, whatever the transport: the driver's handle.
pub type RunningController = ControllerHandle;

/// A running device agent, whatever the transport: the driver's handle. Its `lease` is the
/// fence lease its driver publishes: a computation may step only while it permits the time
/// of the step.
pub type RunningDevice = DeviceHandle;

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
    pub fn serve(
        self,
        ex: &Arc<Executor<'static>>,
        controller: Controller,
        epoch: Epoch,
        addr: SocketAddr,
        tls: Option<&ServerTls>,
        limits: TransportLimits,
    ) -> io::Result<RunningController> {
        Ok(match self {
            Transport::Quic => {
                let tls = tls.ok_or_else(|| io::Error::other("QUIC needs TLS settings"))?;
                let listener = pcxses_transport_quic::listen(ex, addr, tls, limits.connections)?;
                spawn_controller(ex, controller, epoch, listener)
            }
            Transport::Tcp => {
                let listener = pcxses_transport_tcp::listen(ex, addr, limits.connections)?;
                spawn_controller(ex, controller, epoch, listener)
            }
            Transport::Udp => {
                let socket = pcxses_transport_udp::bind(addr, limits.v6_links)?;
                spawn_controller(ex, controller, epoch, socket)
            }
        })
    }

    /// Runs `device` against the ACs at `acs` (a leader and its standbys, or one AC), in
    /// tasks of `ex`; QUIC needs `tls`.
    pub fn connect(
        self,
        ex: &Arc<Executor<'static>>,
        device: Device,
        epoch: Epoch,
        acs: Acs,
        tls: Option<&ClientTls>,
    ) -> io::Result<RunningDevice> {
        Ok(match self {
            Transport::Quic => {
                let tls = tls.ok_or_else(|| io::Error::other("QUIC needs TLS settings"))?;
                let dial = pcxses_transport_quic::Dial::new(acs, tls)?;
                spawn_device(ex, device, epoch, dial)
            }
            Transport::Tcp => spawn_device(ex, device, epoch, pcxses_transport_tcp::Dial::new(acs)),
            Transport::Udp => spawn_device(ex, device, epoch, pcxses_transport_udp::Dial::new(acs)),
        })
    }
}
