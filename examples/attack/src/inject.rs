//! Sending bottles to a target: datagrams from a pool of source ports, or frames on
//! connections of their own whose reading the target confirms by closing its side.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use pcxses_core::frame::push_frame;

use crate::AttackError;

/// How long a connection may take to open, and the target to read a frame.
pub const TCP_WAIT: Duration = Duration::from_millis(500);

/// UDP sockets on loopback, used in turn, so that what is sent comes from many source
/// ports.
pub struct SourcePool {
    sockets: Vec<UdpSocket>,
    next: usize,
}

impl SourcePool {
    /// `count` sockets (at least one) on the loopback address of `target`'s family.
    pub fn bind(count: usize, target: SocketAddr) -> Result<SourcePool, AttackError> {
        let local: SocketAddr = if target.is_ipv4() {
            ([127, 0, 0, 1], 0).into()
        } else {
            (std::net::Ipv6Addr::LOCALHOST, 0).into()
        };
        let sockets = (0..count.max(1))
            .map(|_| UdpSocket::bind(local))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SourcePool { sockets, next: 0 })
    }

    /// Sends one datagram from the next socket; `false` if the kernel refused it.
    pub fn send(&mut self, to: SocketAddr, bytes: &[u8]) -> bool {
        let socket = &self.sockets[self.next % self.sockets.len()];
        self.next = self.next.wrapping_add(1);
        match socket.send_to(bytes, to) {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(%to, error = %e, "send failed");
                false
            }
        }
    }
}

/// What became of one bottle sent on a connection of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// No connection, or the frame could not be written.
    NotSent,
    /// Written, but the target did not close its side in time: it may not have read it.
    Sent,
    /// Written, and the target closed its side after the end of the stream: it read it.
    Read,
}

/// Opens a connection to `to`, sends `bottle` framed, closes the sending side and waits
/// (at most [`TCP_WAIT`], and not past `deadline`) for the target to close its side.
pub fn send_on_own_connection(to: SocketAddr, bottle: &[u8], deadline: Instant) -> Delivery {
    let wait = TCP_WAIT.min(deadline.saturating_duration_since(Instant::now()));
    if wait.is_zero() {
        return Delivery::NotSent;
    }
    let Ok(mut conn) = TcpStream::connect_timeout(&to, wait) else {
        return Delivery::NotSent;
    };
    let mut frame = Vec::with_capacity(bottle.len() + 5);
    push_frame(bottle, &mut frame);
    let written = conn
        .set_write_timeout(Some(wait))
        .and_then(|()| conn.write_all(&frame))
        .and_then(|()| conn.shutdown(Shutdown::Write));
    if written.is_err() {
        return Delivery::NotSent;
    }
    if conn.set_read_timeout(Some(wait)).is_err() {
        return Delivery::Sent;
    }
    // Answers (a REJECT) may come first; the end of the stream is what counts.
    let mut buf = [0u8; 1024];
    let until = Instant::now() + wait;
    while Instant::now() < until {
        match conn.read(&mut buf) {
            Ok(0) => return Delivery::Read,
            Ok(_) => {}
            Err(_) => return Delivery::Sent,
        }
    }
    Delivery::Sent
}

/// A connection that carries many frames, opened again when the target closes it.
pub struct FrameStream {
    to: SocketAddr,
    conn: Option<TcpStream>,
    /// Connections opened so far.
    pub opened: u64,
}

impl FrameStream {
    /// A stream to `to`, not opened yet.
    pub fn new(to: SocketAddr) -> FrameStream {
        FrameStream {
            to,
            conn: None,
            opened: 0,
        }
    }

    /// Writes `bytes` (frames, or anything) on the connection, opening one if needed;
    /// `false` if that failed. Never blocks longer than [`TCP_WAIT`] at a time.
    pub fn write(&mut self, bytes: &[u8]) -> bool {
        if self.conn.is_none() {
            let Ok(conn) = TcpStream::connect_timeout(&self.to, TCP_WAIT) else {
                return false;
            };
            if conn.set_write_timeout(Some(TCP_WAIT)).is_err() {
                return false;
            }
            self.opened += 1;
            self.conn = Some(conn);
        }
        let ok = self
            .conn
            .as_mut()
            .is_some_and(|c| c.write_all(bytes).is_ok());
        if !ok {
            self.conn = None;
        }
        ok
    }

    /// Closes the connection; the next write opens another (from another source port).
    pub fn rotate(&mut self) {
        self.conn = None;
    }
}
