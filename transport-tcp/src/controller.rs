//! The AC's TCP listener.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use pcxses_driver::{ConnectionLimits, Pipe, Server};
use smol::net::TcpListener;
use smol::{Async, Executor};

use crate::acceptor::accept;

/// The AC's port on TCP: the connections accepted from its listener, held by the driver
/// within their [`ConnectionLimits`].
pub type Listener = Server<Pipe>;

/// Listens on `addr` for connections bounded by `limits` (`ConnectionLimits::default()`
/// unless the AC accepts longer intervals); the acceptor runs in a task of `ex`. Run the
/// AC on it with [`spawn_controller`](crate::spawn_controller). Incoming frames are
/// bounded by the largest bottle any framing carries.
pub fn listen(
    ex: &Arc<Executor<'static>>,
    addr: SocketAddr,
    limits: ConnectionLimits,
) -> io::Result<Listener> {
    let listener = TcpListener::from(Async::<std::net::TcpListener>::bind(addr)?);
    let local_addr = listener.local_addr()?;
    Ok(Server::new(ex, local_addr, limits, |arrivals| {
        accept(listener, arrivals)
    }))
}
