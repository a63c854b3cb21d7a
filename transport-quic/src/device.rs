//! How a device reaches its AC over QUIC, again whenever its connection ends.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use pcxses_driver::{Connect, Frames, Opened};
use smol::future::FutureExt;
use smol::Timer;

use crate::streams::{connected, Streams};
use crate::tls::ClientTls;

/// How long a stopping agent waits, at most, for its connection's close to reach the AC.
const CLOSE_WAIT: Duration = Duration::from_millis(200);

/// How a device connects to the AC: a client endpoint with the device's TLS settings, and
/// the AC's address and name. Each connection is made in the background, and again with
/// backoff whenever it ends. Run a device on it with [`spawn_device`](crate::spawn_device).
#[derive(Debug)]
pub struct Dial {
    endpoint: quinn::Endpoint,
    ac: SocketAddr,
    name: String,
}

impl Dial {
    /// Connections to the AC at `ac` with `tls`, from an endpoint on a free port.
    pub fn new(ac: SocketAddr, tls: &ClientTls) -> io::Result<Dial> {
        let config = tls.quinn_config().map_err(io::Error::other)?;
        let any: SocketAddr = if ac.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let mut endpoint = crate::endpoint(any, None)?;
        endpoint.set_default_client_config(config);
        Ok(Dial {
            endpoint,
            ac,
            name: tls.ac_name.clone(),
        })
    }
}

impl Connect for Dial {
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
