//! The QUIC AC's connection and handshake bounds over real sockets on 127.0.0.1: peers
//! that connect and never send an accepted bottle, and peers that start handshakes and
//! vanish, cannot keep a device out.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use pcxses_core::Epoch;
use pcxses_transport_quic::certs::AC_NAME;
use pcxses_transport_quic::ConnectionLimits;
use smol::future::FutureExt;
use smol::{Executor, Timer};

#[test]
fn a_full_quic_connection_table_evicts_unproven_holders_so_a_device_still_joins() {
    let ex = Arc::new(Executor::new());
    smol::block_on(ex.run(async {
        let epoch = Epoch::new();
        let cap = 2;
        let limits = ConnectionLimits {
            max_connections: cap,
            ..limits(Duration::from_secs(60), Duration::from_secs(60))
        };
        let ac = ac(&ex, epoch, limits).await;
        let stats = ac.connections.clone().expect("QUIC has connections");
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
        eventually(10, "the first holders evicted", || {
            stats.evicted.load(Relaxed) >= 3
        })
        .await;
        let _agent = join_dev0(&ex, epoch, ac.local_addr, &ac.events).await;
        assert!(stats.open.load(Relaxed) <= cap as u64);
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
            ..limits(Duration::from_millis(500), Duration::from_secs(60))
        };
        let ac = ac(&ex, epoch, limits).await;
        let stats = ac.connections.clone().expect("QUIC has connections");
        let hole = black_hole(&ex, ac.local_addr);
        // Clients whose handshakes stall: the AC's answers never reach them.
        let stalled: Vec<_> = (0..6)
            .map(|_| {
                let endpoint = client(&client_tls("holder"));
                let connecting = endpoint.connect(hole, AC_NAME).unwrap();
                (endpoint, ex.spawn(async move { connecting.await.is_ok() }))
            })
            .collect();
        eventually(10, "the handshakes beyond the limit refused", || {
            stats.handshakes_refused.load(Relaxed) >= 4
        })
        .await;
        // The stalled handshakes run out of time; a device gets in.
        let _agent = join_dev0(&ex, epoch, ac.local_addr, &ac.events).await;
        drop(stalled);
    }));
}
