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
//! their own, so HELLOs and their acknowledgements never wait behind code. Bottles are framed as on TCP ([`pcxses_core::frame`]). A device reconnects
//! with backoff and jitter when its connection ends; a dropped connection is not a death,
//! only the dead interval decides. The API is that of the TCP and UDP adapters, with TLS
//! settings added; this crate holds the TLS settings, the endpoint, the acceptor and the
//! streams, and `pcxses-driver` the rest.
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

pub use controller::{spawn_controller, spawn_controller_with};
pub use device::spawn_device;
pub use pcxses_driver::{
    ConnectionLimits, ConnectionStats, ControllerHandle, DeviceHandle, EVENT_QUEUE, WRITE_BUFFER,
};
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
