//! QUIC + TLS transport for PCXSES on `quinn` (smol runtime) and `rustls`.
//!
//! Both ends authenticate with certificates (TLS 1.3, ALPN `pcxses/1`): the AC accepts
//! only devices whose certificate chains to the configured device CA, and hands the name
//! in that certificate to the core with every bottle, so a GOOD_MORNING claiming another
//! device is refused (REJECT `Unauthorized`). The device trusts only the AC's CA.
//!
//! Each connection is one [`LinkId`](pcxses_core::LinkId). The device opens one
//! bidirectional stream for the control bottles; the AC sends MORPH object chunks
//! ([`TransmitKind::Bulk`](pcxses_core::TransmitKind::Bulk)) on a unidirectional stream of
//! their own, so HELLOs and their acknowledgements never wait behind code. Bottles are
//! framed as on TCP ([`pcxses_core::frame`]). A device reconnects with backoff and jitter
//! when its connection ends; a dropped connection is not a death, only the dead interval
//! decides. This crate holds the TLS settings, the endpoint, the acceptor and the
//! streams, and `pcxses-driver` the rest.
//!
//! The adapter opens endpoints; the driver runs the machines on them, as for the TCP and
//! UDP adapters, with TLS settings added. An AC listens with [`listen`] and runs on the
//! [`Listener`] with [`spawn_controller`]; a device runs with [`spawn_device`] on a
//! [`Dial`], which connects (and reconnects) to the AC. Both return the driver's handles
//! ([`ControllerHandle`], [`DeviceHandle`]), re-exported here with the two functions:
//!
//! ```no_run
//! use std::io;
//! use std::path::Path;
//! use std::sync::Arc;
//!
//! use pcxses_core::{Controller, Device, Epoch};
//! use pcxses_transport_quic::{
//!     listen, spawn_controller, spawn_device, ClientTls, ConnectionLimits, Dial, ServerTls,
//! };
//! use smol::Executor;
//!
//! /// Serves `controller` on QUIC port 4700 and runs `device`, named `pump` in its
//! /// certificate, against it, printing what the device sees. The files are those
//! /// `pcxses-ac certs --dir pki pump` writes.
//! fn run(controller: Controller, device: Device, epoch: Epoch) -> io::Result<()> {
//!     let pem = |name: &str| Path::new("pki").join(name);
//!     let server = ServerTls::from_pem_files(&pem("ac.pem"), &pem("ac.key"), &pem("ca.pem"))
//!         .map_err(io::Error::other)?;
//!     let (cert, key) = (pem("pump.pem"), pem("pump.key"));
//!     let client = ClientTls::from_pem_files(&pem("ca.pem"), "ac", &cert, &key)
//!         .map_err(io::Error::other)?;
//!     let ex = Arc::new(Executor::new());
//!     smol::block_on(ex.run(async {
//!         let addr = "127.0.0.1:4700".parse().unwrap();
//!         let listener = listen(&ex, addr, &server, ConnectionLimits::default())?;
//!         let ac = spawn_controller(&ex, controller, epoch, listener);
//!         let agent = spawn_device(&ex, device, epoch, Dial::new(ac.local_addr, &client)?);
//!         while let Ok(event) = agent.events.recv().await {
//!             println!("{event:?}");
//!         }
//!         Ok(())
//!     }))
//! }
//! ```
//!
//! # Bounds against hostile peers
//!
//! The connection bounds are those of every connection transport ([`ConnectionLimits`]):
//! at most
//! `max_connections` connections (a new one evicts the oldest without an accepted bottle,
//! or is closed when all have one), a deadline for the handshake, the control stream and
//! the first accepted bottle, and an idle timeout for a connection that sends no bottle.
//! At most `max_handshakes` handshakes are in flight (quinn's `max_incoming` and a count of
//! the adapter's own): further attempts are refused at once. The AC accepts one
//! bidirectional stream per connection and no unidirectional one. Frames are handled in
//! bounded batches after commands and timers. [`ControllerHandle::connections`] counts what
//! the bounds did. These bounds are local policy: nothing on the wire changes.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod acceptor;
#[cfg(feature = "certs")]
pub mod certs;
mod controller;
mod device;
mod streams;
pub mod tls;

pub use controller::{listen, Listener};
pub use device::Dial;
pub use pcxses_driver::{
    spawn_controller, spawn_device, Acs, ConnectionLimits, ConnectionStats, ControllerHandle,
    DeviceHandle, EVENT_QUEUE, WRITE_BUFFER,
};
pub use streams::Streams;
pub use tls::{ClientTls, ServerTls, TlsError};

/// A UDP socket for an endpoint, and the endpoint on smol.
fn endpoint(
    addr: std::net::SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> std::io::Result<quinn::Endpoint> {
    let socket = std::net::UdpSocket::bind(addr)?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        server,
        socket,
        std::sync::Arc::new(quinn::SmolRuntime),
    )
}
