//! Binding UDP sockets with room for bursts.

use std::io;
use std::net::SocketAddr;

use smol::Async;
use socket2::{Domain, Protocol, Socket, Type};

/// Receive buffer requested for every socket. The kernel caps it at
/// `net.core.rmem_max`; the default buffer (about 200 KiB) holds only a few hundred small
/// datagrams, which a burst of HELLOs from many devices overflows.
pub const RECV_BUFFER: usize = 4 * 1024 * 1024;

/// A non-blocking UDP socket bound to `addr`, with a large receive buffer.
pub fn bind_socket(addr: SocketAddr) -> io::Result<Async<std::net::UdpSocket>> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = socket.set_recv_buffer_size(RECV_BUFFER) {
        tracing::debug!(error = %e, "could not enlarge the receive buffer");
    }
    socket.bind(&addr.into())?;
    Async::new(std::net::UdpSocket::from(socket))
}
