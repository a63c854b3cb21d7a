//! How a device reaches its AC over QUIC, again whenever its connection ends.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use pcxses_driver::{Acs, Connect, Frames, Opened};
use smol::future::FutureExt;
use smol::Timer;

use crate::streams::{connected, Streams};
use crate::tls::ClientTls;

/// How long a stopping agent waits, at most, for its connection's close to reach the AC.
const CLOSE_WAIT: Duration = Duration::from_millis(200);

/// How a device connects to its area's ACs: a client endpoint with the device's TLS
/// settings, and the ACs' addresses and name. Each connection is made in the background,
/// and again with backoff whenever it ends. Run a device on it with
/// [`spawn_device`](crate::spawn_device).
#[derive(Debug)]
pub struct Dial {
    endpoint: quinn::Endpoint,
    acs: Acs,
    name: String,
}

impl Dial {
    /// Connections to the AC at `acs` (one address, or the [`Acs`] of a leader and its
    /// standbys, all of one IP version) with `tls`, from an endpoint on a free port.
    pub fn new(acs: impl Into<Acs>, tls: &ClientTls) -> io::Result<Dial> {
        let acs = acs.into();
        let ac = acs.get(0);
        if acs.iter().any(|a| a.is_ipv4() != ac.is_ipv4()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the ACs' addresses mix IPv4 and IPv6",
            ));
        }
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
            acs,
            name: tls.ac_name.clone(),
        })
    }
}

impl Connect for Dial {
    type Connection = Streams;

    fn acs(&self) -> &Acs {
        &self.acs
    }

    /// Connects and opens the control stream.
    async fn connect(&self, ac: SocketAddr, frames: &Frames) -> io::Result<Opened<Streams>> {
        let connecting = self
            .endpoint
            .connect(ac, &self.name)
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
