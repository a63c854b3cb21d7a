//! A device agent on a TCP connection to the AC, reconnecting as needed.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use pcxses_core::{Device, Epoch};
use pcxses_driver::{Connect, DeviceHandle, Frames, Opened, Pipe};
use smol::net::TcpStream;
use smol::Executor;

/// The AC's address.
struct Dial(SocketAddr);

impl Connect for Dial {
    type Connection = Pipe;

    fn ac(&self) -> SocketAddr {
        self.0
    }

    async fn connect(&self, frames: &Frames) -> io::Result<Opened<Pipe>> {
        let stream = TcpStream::connect(self.0).await?;
        let _ = stream.set_nodelay(true);
        Ok(Opened::stream(stream, frames.clone()))
    }
}

/// Drives `device` over TCP to the AC at `ac`, connecting in the background.
pub async fn spawn_device(
    ex: &Arc<Executor<'static>>,
    device: Device,
    epoch: Epoch,
    ac: SocketAddr,
) -> io::Result<DeviceHandle> {
    Ok(pcxses_driver::spawn_device(ex, device, epoch, Dial(ac)))
}
