//! The QUIC AC's connection and handshake bounds over real sockets on 127.0.0.1: peers
//! that connect and never send an accepted bottle, and peers that start handshakes and
//! vanish, cannot keep a device out.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pcxses_core::controller::{ComputationSpec, DeviceSpec};
use pcxses_core::{
    Controller, ControllerConfig, ControllerEvent, Device, DeviceConfig, Epoch, MemoryRepository,
};
use pcxses_transport_quic::certs::{DevCa, AC_NAME};
use pcxses_transport_quic::tls::{certificates, private_key, ALPN};
use pcxses_transport_quic::{
    spawn_controller_with, spawn_device, ClientTls, ConnectionLimits, ControllerHandle, ServerTls,
};
use smol::channel::Receiver;
use smol::future::FutureExt;
use smol::{Executor, Timer};

fn ca() -> &'static DevCa {
    static CA: OnceLock<DevCa> = OnceLock::new();
    CA.get_or_init(|| DevCa::new("test CA").unwrap())
}

fn server_tls() -> ServerTls {
    let ac = ca().ac().unwrap();
    ServerTls {
        cert_chain: certificates(ac.cert_pem.as_bytes(), "ac").unwrap(),
        key: private_key(ac.key_pem.as_bytes(), "ac").unwrap(),
        device_ca: certificates(ca().issued().cert_pem.as_bytes(), "ca").unwrap(),
    }
}

fn client_tls(holder: &str) -> ClientTls {
    let cert = ca().device(holder).unwrap();
    ClientTls {
        ac_ca: certificates(ca().issued().cert_pem.as_bytes(), "ca").unwrap(),
        ac_name: AC_NAME.into(),
        cert_chain: certificates(cert.cert_pem.as_bytes(), holder).unwrap(),
        key: private_key(cert.key_pem.as_bytes(), holder).unwrap(),
        alpn: ALPN.to_vec(),
    }
}

fn controller(epoch: &Epoch) -> Controller {
    let devices = vec![DeviceSpec::new("dev0", &["comp0"])];
    let comps = vec![ComputationSpec::new("comp0", "comp0.bin")];
    let mut repo = MemoryRepository::default();
    repo.insert("comp0.bin", vec![0xc0; 100]);
    let config = ControllerConfig::new(11, devices, comps);
    Controller::new(config, repo, epoch.now()).expect("valid configuration")
}

fn device(name: &str, epoch: &Epoch) -> Device {
    let mut config = DeviceConfig::new(name, 7);
    config.hello_ms = 100;
    config.dead_ms = 500;
    config.join_retry_ms = 20;
    config.join_retry_max_ms = 200;
    Device::new(config, epoch.now())
}

async fn ac(
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
fn client(tls: &ClientTls) -> quinn::Endpoint {
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
async fn joined(events: &Receiver<ControllerEvent>) {
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

#[test]
fn a_full_quic_connection_table_evicts_unproven_holders_so_a_device_still_joins() {
    let ex = Arc::new(Executor::new());
    smol::block_on(ex.run(async {
        let epoch = Epoch::new();
        let cap = 2;
        let limits = ConnectionLimits {
            max_connections: cap,
            first_bottle: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            ..ConnectionLimits::default()
        };
        let ac = ac(&ex, epoch, limits).await;
        // Holders with valid certificates that open their control stream, send an
        // unfinished frame, and hold.
        let mut holders = Vec::new();
        for _ in 0..cap + 3 {
            let endpoint = client(&client_tls("holder"));
            let connection = endpoint
                .connect(ac.local_addr, AC_NAME)
                .unwrap()
                .await
                .unwrap();
            let (mut send, recv) = connection.open_bi().await.unwrap();
            send.write_all(&[0x10, 0x01]).await.unwrap();
            holders.push((endpoint, connection, send, recv));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while ac.connections.evicted.load(Relaxed) < 3 {
            assert!(std::time::Instant::now() < deadline, "no holder evicted");
            Timer::after(Duration::from_millis(10)).await;
        }
        let _agent = spawn_device(
            &ex,
            device("dev0", &epoch),
            epoch,
            ac.local_addr,
            &client_tls("dev0"),
        )
        .await
        .unwrap();
        joined(&ac.events).await;
        assert!(ac.connections.open.load(Relaxed) <= cap as u64);
        // The first holders' connections were closed.
        for (_, connection, _, _) in holders.iter().take(3) {
            let closed = async { Some(connection.closed().await) }
                .or(async {
                    Timer::after(Duration::from_secs(5)).await;
                    None
                })
                .await;
            assert!(
                closed.is_some(),
                "an evicted holder's connection is still open"
            );
        }
    }));
}

/// Forwards the datagrams its clients send to `ac`, each client from a socket of its own,
/// and drops every answer: the AC's handshakes with these clients never complete.
fn black_hole(ex: &Executor<'static>, ac: SocketAddr) -> SocketAddr {
    let front = smol::Async::<UdpSocket>::bind(([127, 0, 0, 1], 0)).unwrap();
    let addr = front.get_ref().local_addr().unwrap();
    ex.spawn(async move {
        let mut backs: Vec<(SocketAddr, UdpSocket)> = Vec::new();
        let mut buf = vec![0u8; 2048];
        while let Ok((n, from)) = front.recv_from(&mut buf).await {
            if !backs.iter().any(|(c, _)| *c == from) {
                backs.push((from, UdpSocket::bind("127.0.0.1:0").unwrap()));
            }
            let (_, back) = backs.iter().find(|(c, _)| *c == from).unwrap();
            let _ = back.send_to(&buf[..n], ac);
        }
    })
    .detach();
    addr
}

#[test]
fn handshakes_beyond_the_limit_are_refused_and_stalled_ones_give_way_to_a_device() {
    let ex = Arc::new(Executor::new());
    smol::block_on(ex.run(async {
        let epoch = Epoch::new();
        let limits = ConnectionLimits {
            max_handshakes: 2,
            first_bottle: Duration::from_millis(500),
            idle: Duration::from_secs(60),
            ..ConnectionLimits::default()
        };
        let ac = ac(&ex, epoch, limits).await;
        let hole = black_hole(&ex, ac.local_addr);
        // Clients whose handshakes stall: the AC's answers never reach them.
        let stalled: Vec<_> = (0..6)
            .map(|_| {
                let endpoint = client(&client_tls("holder"));
                let connecting = endpoint.connect(hole, AC_NAME).unwrap();
                (endpoint, ex.spawn(async move { connecting.await.is_ok() }))
            })
            .collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while ac.connections.handshakes_refused.load(Relaxed) < 4 {
            assert!(
                std::time::Instant::now() < deadline,
                "handshakes beyond the limit were not refused"
            );
            Timer::after(Duration::from_millis(10)).await;
        }
        // The stalled handshakes run out of time; a device gets in.
        let _agent = spawn_device(
            &ex,
            device("dev0", &epoch),
            epoch,
            ac.local_addr,
            &client_tls("dev0"),
        )
        .await
        .unwrap();
        joined(&ac.events).await;
        drop(stalled);
    }));
}
