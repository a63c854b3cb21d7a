//! A device agent on a QUIC connection to the AC, reconnecting as needed.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pcxses_core::{Device, Epoch};
use pcxses_driver::{Connect, DeviceHandle, Frames, Opened};
use smol::future::FutureExt;
use smol::{Executor, Timer};

use crate::streams::{connected, Streams};
use crate::tls::ClientTls;

/// How long a stopping agent waits, at most, for its connection's close to reach the AC.
const CLOSE_WAIT: Duration = Duration::from_millis(200);

/// Where and how to connect.
struct Target {
    endpoint: quinn::Endpoint,
    ac: SocketAddr,
    name: String,
}

impl Connect for Target {
    type Connection = Streams;

    fn ac(&self) -> SocketAddr {
        self.ac
    }

    /// Connects and opens the control stream.
    async fn connect(&self, frames: &Frames) -> io::Result<Opened<Streams>> {
        let connecting = self
            .endpoint
            .connect(self.ac, &self.name)
            .map_err(io::Error::other)?;
        let connection = connecting.await.map_err(io::Error::other)?;
        let control = connection.open_bi().await.map_err(io::Error::other)?;
        Ok(connected(connection, control, frames.clone()))
    }

    async fn close(&self) {
        self.endpoint
            .wait_idle()
            .or(async {
                Timer::after(CLOSE_WAIT).await;
            })
            .await;
    }
}

/// Drives `device` over QUIC to the AC at `ac` with `tls`, connecting in the background.
pub async fn spawn_device(
    ex: &Arc<Executor<'static>>,
    device: Device,
    epoch: Epoch,
    ac: SocketAddr,
    tls: &ClientTls,
) -> io::Result<DeviceHandle> {
    let config = tls.quinn_config().map_err(io::Error::other)?;
    let any: SocketAddr = if ac.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let mut endpoint = crate::endpoint(any, None)?;
    endpoint.set_default_client_config(config);
    let target = Target {
        endpoint,
        ac,
        name: tls.ac_name.clone(),
    };
    Ok(pcxses_driver::spawn_device(ex, device, epoch, target))
}
