//! The AC on a TCP listener.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use pcxses_core::{Controller, Epoch};
use pcxses_driver::{ConnectionLimits, ControllerHandle, Server};
use smol::net::TcpListener;
use smol::Executor;

use crate::acceptor::accept;

/// Listens on `addr` and drives `controller` for every connection, in a task of `ex`,
/// with the default [`ConnectionLimits`]. Incoming frames are bounded by the largest
/// bottle any framing carries.
pub async fn spawn_controller(
    ex: &Arc<Executor<'static>>,
    controller: Controller,
    epoch: Epoch,
    addr: SocketAddr,
) -> io::Result<ControllerHandle> {
    spawn_controller_with(ex, controller, epoch, addr, ConnectionLimits::default()).await
}

/// [`spawn_controller`] with the connections bounded by `limits`.
pub async fn spawn_controller_with(
    ex: &Arc<Executor<'static>>,
    controller: Controller,
    epoch: Epoch,
    addr: SocketAddr,
    limits: ConnectionLimits,
) -> io::Result<ControllerHandle> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let server = Server::new(ex, limits, |arrivals| accept(listener, arrivals));
    Ok(pcxses_driver::spawn_controller(
        ex, controller, epoch, local_addr, server,
    ))
}
