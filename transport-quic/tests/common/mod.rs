//! What the QUIC adapter's tests share: a development PKI, an AC that knows `dev0`, device
//! agents, and raw client endpoints.

#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pcxses_core::controller::{ComputationSpec, DeviceSpec};
use pcxses_core::{
    Controller, ControllerConfig, ControllerEvent, Device, DeviceConfig, Epoch, MemoryRepository,
};
use pcxses_transport_quic::certs::{DevCa, AC_NAME};
use pcxses_transport_quic::tls::{certificates, private_key, ALPN};
use pcxses_transport_quic::{
    spawn_controller_with, spawn_device, ClientTls, ConnectionLimits, ControllerHandle,
    DeviceHandle, ServerTls,
};
use smol::channel::Receiver;
use smol::future::FutureExt;
use smol::{Executor, Timer};

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

/// An AC that knows `dev0`.
pub fn controller(epoch: &Epoch) -> Controller {
    let devices = vec![DeviceSpec::new("dev0", &["comp0"])];
    let comps = vec![ComputationSpec::new("comp0", "comp0.bin")];
    let mut repo = MemoryRepository::default();
    repo.insert("comp0.bin", vec![0xc0; 100]);
    let config = ControllerConfig::new(11, devices, comps);
    Controller::new(config, repo, epoch.now()).expect("valid configuration")
}

/// Device `name`: HELLO every 100 ms, dead after 500 ms.
pub fn device(name: &str, epoch: &Epoch) -> Device {
    let mut config = DeviceConfig::new(name, 7);
    config.hello = Duration::from_millis(100);
    config.dead = Duration::from_millis(500);
    config.join_retry = Duration::from_millis(20);
    config.join_retry_max = Duration::from_millis(200);
    Device::new(config, epoch.now())
}

/// The AC of [`controller`] on a free port of 127.0.0.1, bounded by `limits`.
pub async fn ac(
    ex: &Arc<Executor<'static>>,
    epoch: Epoch,
    limits: ConnectionLimits,
) -> ControllerHandle {
    spawn_controller_with(
        ex,
        controller(&epoch),
        epoch,
        "127.0.0.1:0".parse().unwrap(),
        &server_tls(),
        limits,
    )
    .await
    .unwrap()
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

/// Waits up to 10 s for `dev0` to join.
pub async fn joined(events: &Receiver<ControllerEvent>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let e = async { events.recv().await.ok() }
            .or(async {
                Timer::at(deadline).await;
                None
            })
            .await
            .expect("the device did not join");
        if matches!(e, ControllerEvent::DeviceJoined { .. }) {
            return;
        }
    }
}

/// Waits up to `secs` for `f` to hold, checking every 10 ms; panics with `failure` when
/// it does not.
pub async fn eventually(secs: u64, failure: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "{failure}");
        Timer::after(Duration::from_millis(10)).await;
    }
}

/// Starts `dev0`, with its certificate, against the AC at `addr` and waits up to 10 s for
/// it to join; the agent runs as long as the handle is kept.
pub async fn join_dev0(
    ex: &Arc<Executor<'static>>,
    epoch: Epoch,
    addr: SocketAddr,
    events: &Receiver<ControllerEvent>,
) -> DeviceHandle {
    let agent = spawn_device(ex, device("dev0", &epoch), epoch, addr, &client_tls("dev0"))
        .await
        .unwrap();
    joined(events).await;
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
