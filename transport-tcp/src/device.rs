//! How a device reaches its AC over TCP, again whenever its connection drops.

use std::io;
use std::net::SocketAddr;

use pcxses_driver::{Connect, Frames, Opened, Pipe};
use smol::net::TcpStream;

/// How a device connects to the AC: a TCP connection to its address, made in the
/// background and again with backoff whenever it ends. Run a device on it with
/// [`spawn_device`](crate::spawn_device).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dial {
    ac: SocketAddr,
}

impl Dial {
    /// Connections to the AC at `ac`.
    pub fn new(ac: SocketAddr) -> Dial {
        Dial { ac }
    }
}

impl Connect for Dial {
    type Connection = Pipe;

    fn ac(&self) -> SocketAddr {
        self.ac
    }

    async fn connect(&self, frames: &Frames) -> io::Result<Opened<Pipe>> {
        let stream = TcpStream::connect(self.ac).await?;
        let _ = stream.set_nodelay(true);
        Ok(Opened::stream(stream, frames.clone()))
    }
}
