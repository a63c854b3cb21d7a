//! The AC's QUIC endpoint.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use pcxses_driver::{ConnectionLimits, Server};
use smol::Executor;

use crate::acceptor::accept;
use crate::streams::Streams;
use crate::tls::ServerTls;

/// The AC's port on QUIC: the connections accepted on its endpoint, held by the driver
/// within their [`ConnectionLimits`].
pub type Listener = Server<Streams>;

/// Serves QUIC on `addr` with `tls`, for connections and handshakes bounded by `limits`
/// (`ConnectionLimits::default()` unless the AC accepts longer intervals); the acceptor
/// runs in a task of `ex`. Run the AC on it with [`spawn_controller`](crate::spawn_controller).
pub fn listen(
    ex: &Arc<Executor<'static>>,
    addr: SocketAddr,
    tls: &ServerTls,
    limits: ConnectionLimits,
) -> io::Result<Listener> {
    let mut config = tls.quinn_config().map_err(io::Error::other)?;
    // Attempts not yet taken by the acceptor: a backstop only, room enough that the
    // acceptor sees (and counts) each attempt it refuses beyond `max_handshakes`.
    config.max_incoming(limits.max_handshakes.max(1).saturating_mul(4));
    let endpoint = crate::endpoint(addr, Some(config))?;
    let local_addr = endpoint.local_addr()?;
    let acceptor = ex.clone();
    Ok(Server::new(ex, local_addr, limits, |arrivals| {
        accept(acceptor, endpoint, arrivals)
    }))
}
