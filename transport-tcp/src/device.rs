//! How a device reaches its AC over TCP, again whenever its connection drops.

use std::io;
use std::net::SocketAddr;

use pcxses_driver::{Acs, Connect, Frames, Opened, Pipe};
use smol::net::TcpStream;

/// How a device connects to its area's ACs: a TCP connection to one of their addresses,
/// made in the background and again with backoff whenever it ends. Run a device on it with
/// [`spawn_device`](crate::spawn_device).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dial {
    acs: Acs,
}

impl Dial {
    /// Connections to the AC at `acs`: one address, or the [`Acs`] of a leader and its
    /// standbys.
    pub fn new(acs: impl Into<Acs>) -> Dial {
        Dial { acs: acs.into() }
    }
}

impl Connect for Dial {
    type Connection = Pipe;

    fn acs(&self) -> &Acs {
        &self.acs
    }

    async fn connect(&self, ac: SocketAddr, frames: &Frames) -> io::Result<Opened<Pipe>> {
        let stream = TcpStream::connect(ac).await?;
        let _ = stream.set_nodelay(true);
        Ok(Opened::stream(stream, frames.clone()))
    }
}
