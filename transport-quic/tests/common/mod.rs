//! What the QUIC adapter's tests share: the driver's fixtures, a development PKI, device
//! agents, and raw client endpoints.

#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pcxses_core::{ControllerEvent, Epoch};
pub use pcxses_driver::testing::*;
use pcxses_transport_quic::certs::{DevCa, AC_NAME};
use pcxses_transport_quic::tls::{certificates, private_key, ALPN};
use pcxses_transport_quic::{
    listen, spawn_controller, spawn_device, ClientTls, ConnectionLimits, ControllerHandle,
    DeviceHandle, Dial, ServerTls,
};
use smol::channel::Receiver;
use smol::Executor;

/// The test CA, made once per test binary.
pub fn ca() -> &'static DevCa {
    static CA: OnceLock<DevCa> = OnceLock::new();
    CA.get_or_init(|| DevCa::new("test CA").unwrap())
}

/// The AC's TLS: its certificate from [`ca`], trusting devices that [`ca`] certified.
pub fn server_tls() -> ServerTls {
    let ac = ca().ac().unwrap();
    ServerTls {
        cert_chain: certificates(ac.cert_pem.as_bytes(), "ac").unwrap(),
        key: private_key(ac.key_pem.as_bytes(), "ac").unwrap(),
        device_ca: certificates(ca().issued().cert_pem.as_bytes(), "ca").unwrap(),
    }
}

/// A client's TLS with a certificate from [`ca`] for `holder`.
pub fn client_tls(holder: &str) -> ClientTls {
    let cert = ca().device(holder).unwrap();
    ClientTls {
        ac_ca: certificates(ca().issued().cert_pem.as_bytes(), "ca").unwrap(),
        ac_name: AC_NAME.into(),
        cert_chain: certificates(cert.cert_pem.as_bytes(), holder).unwrap(),
        key: private_key(cert.key_pem.as_bytes(), holder).unwrap(),
        alpn: ALPN.to_vec(),
    }
}

/// The AC of [`controller`] on a free port of 127.0.0.1, bounded by `limits`.
pub async fn ac(
    ex: &Arc<Executor<'static>>,
    epoch: Epoch,
    limits: ConnectionLimits,
) -> ControllerHandle {
    let tls = server_tls();
    let listener = listen(ex, loopback(), &tls, limits).unwrap();
    spawn_controller(ex, controller(&epoch), epoch, listener)
}

/// A client endpoint on its own socket.
pub fn client(tls: &ClientTls) -> quinn::Endpoint {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        None,
        socket,
        Arc::new(quinn::SmolRuntime),
    )
    .unwrap();
    endpoint.set_default_client_config(tls.quinn_config().unwrap());
    endpoint
}

/// Starts `dev0`, with its certificate, against the AC at `addr` and waits up to 10 s for
/// it to join; the agent runs as long as the handle is kept.
pub async fn join_dev0(
    ex: &Arc<Executor<'static>>,
    epoch: Epoch,
    addr: SocketAddr,
    events: &Receiver<ControllerEvent>,
) -> DeviceHandle {
    let tls = client_tls("dev0");
    let dial = Dial::new(addr, &tls).unwrap();
    let agent = spawn_device(ex, device("dev0", 7, &epoch), epoch, dial);
    joined(events, 0).await;
    agent
}

/// Connection limits with the given first-bottle deadline and idle timeout, otherwise
/// the defaults.
pub fn limits(first_bottle: Duration, idle: Duration) -> ConnectionLimits {
    ConnectionLimits {
        first_bottle,
        idle,
        ..ConnectionLimits::default()
    }
}
