//! The AC on a QUIC endpoint.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use pcxses_core::{Controller, Epoch};
use pcxses_driver::{ConnectionLimits, ControllerHandle, Server};
use smol::Executor;

use crate::acceptor::accept;
use crate::tls::ServerTls;

/// Serves QUIC on `addr` with `tls` and drives `controller` for every connection, in a
/// task of `ex`, with the default [`ConnectionLimits`].
pub async fn spawn_controller(
    ex: &Arc<Executor<'static>>,
    controller: Controller,
    epoch: Epoch,
    addr: SocketAddr,
    tls: &ServerTls,
) -> io::Result<ControllerHandle> {
    spawn_controller_with(
        ex,
        controller,
        epoch,
        addr,
        tls,
        ConnectionLimits::default(),
    )
    .await
}

/// [`spawn_controller`] with the connections and handshakes bounded by `limits`.
pub async fn spawn_controller_with(
    ex: &Arc<Executor<'static>>,
    controller: Controller,
    epoch: Epoch,
    addr: SocketAddr,
    tls: &ServerTls,
    limits: ConnectionLimits,
) -> io::Result<ControllerHandle> {
    let mut config = tls.quinn_config().map_err(io::Error::other)?;
    // Attempts not yet taken by the acceptor: a backstop only, room enough that the
    // acceptor sees (and counts) each attempt it refuses beyond `max_handshakes`.
    config.max_incoming(limits.max_handshakes.max(1).saturating_mul(4));
    let endpoint = crate::endpoint(addr, Some(config))?;
    let local_addr = endpoint.local_addr()?;
    let acceptor = ex.clone();
    let server = Server::new(ex, limits, |arrivals| accept(acceptor, endpoint, arrivals));
    Ok(pcxses_driver::spawn_controller(
        ex, controller, epoch, local_addr, server,
    ))
}
