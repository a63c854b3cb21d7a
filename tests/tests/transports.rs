//! The protocol over real sockets on 127.0.0.1, for every transport from one suite: devices
//! join, report state, and when one device's agent dies its computation moves to the other
//! and resumes from the state the AC acknowledged.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pcxses_core::device::DeviceCommand;
use pcxses_core::{Controller, ControllerEvent, Device, DeviceEvent, Epoch};
use pcxses_driver::testing::{ac_event, controller_with, device_config};
use pcxses_tests::app::{decode_count, encode_state};
use pcxses_tests::memory_journal::MemoryJournal;
use pcxses_tests::ports::free_addr;
use pcxses_tests::tcp_proxy::TcpProxy;
use smol::channel::Receiver;
use smol::future::FutureExt;
use smol::Timer;

/// What a device application saw.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// The count of the last state the AC acknowledged, per computation.
    acked: Vec<(String, u64)>,
    /// Installs: computation and the count in the LKGS.
    installs: Vec<(String, u64)>,
    /// Sessions whose computations started.
    joins: u32,
}

fn controller(epoch: &Epoch) -> Controller {
    controller_with(epoch, 5_000, |config| {
        config.rto = Duration::from_millis(20)
    })
}

fn device(name: &str, seed: u64, epoch: &Epoch) -> Device {
    let mut config = device_config(name, seed);
    config.rto = Duration::from_millis(20);
    Device::new(config, epoch.now())
}

/// Runs a counter application on a device agent: starts what it is told, restores what it
/// receives, stops what it must, and reports its state every 20 ms.
async fn application(
    events: Receiver<DeviceEvent>,
    commands: smol::channel::Sender<DeviceCommand>,
    seen: Arc<Mutex<Seen>>,
) {
    let mut running: Vec<(String, u64)> = Vec::new();
    let mut sets: Vec<(String, u64)> = Vec::new();
    loop {
        let event = async { events.recv().await.ok() }
            .or(async {
                Timer::after(Duration::from_millis(20)).await;
                None
            })
            .await;
        match event {
            Some(DeviceEvent::Joined { run, .. }) => {
                seen.lock().unwrap().joins += 1;
                running = run.into_iter().map(|c| (c.into(), 0)).collect();
            }
            Some(DeviceEvent::Install(install)) => {
                let count = decode_count(install.lkgs());
                seen.lock()
                    .unwrap()
                    .installs
                    .push((install.computation.into(), count));
                running.push((install.computation.into(), count));
                let _ = commands
                    .send(DeviceCommand::AnswerInstall {
                        id: install.id,
                        started: true,
                    })
                    .await;
            }
            Some(DeviceEvent::Stop { computation, .. }) => {
                running.retain(|(c, _)| *c != computation)
            }
            Some(DeviceEvent::StateStored {
                computation,
                version,
            }) => {
                // Version v is the v-th state this agent reported for the computation.
                let count = sets
                    .iter()
                    .filter(|(c, _)| *c == computation)
                    .nth(version as usize - 1);
                if let Some(&(_, n)) = count {
                    let mut view = seen.lock().unwrap();
                    view.acked.retain(|(c, _)| *c != computation);
                    view.acked.push((computation.into(), n));
                }
            }
            Some(_) => {}
            None if events.is_closed() => return,
            None => {
                for (name, count) in running.iter_mut() {
                    *count += 1;
                    sets.push((name.clone(), *count));
                    let state = encode_state(name, *count, 64);
                    let _ = commands
                        .send(DeviceCommand::SetState {
                            computation: name.clone(),
                            state,
                        })
                        .await;
                }
            }
        }
    }
}

/// The suite on one transport: `listen` opens the AC's port on `addr`, `dial` is how
/// device `name` reaches the ACs at `acs`.
macro_rules! transport_suite {
    (
        $name:ident,
        listen: |$ex:ident, $addr:ident| $listen:expr,
        dial: |$acs:ident, $device:ident| $dial:expr
    ) => {
        mod $name {
            use super::*;
            use std::net::SocketAddr;
            use pcxses_driver::{spawn_controller, spawn_device, Acs, Connect, Port};

            fn listen($ex: &Arc<smol::Executor<'static>>, $addr: SocketAddr) -> impl Port {
                $listen
            }

            fn dial($acs: impl Into<Acs>, $device: &str) -> impl Connect {
                $dial
            }

            #[test]
            fn a_device_moves_to_the_standby_ac_in_its_session_when_its_ac_is_gone() {
                let ex = Arc::new(smol::Executor::new());
                smol::block_on(ex.run(async {
                    let epoch = Epoch::new();
                    let leader = controller(&epoch);
                    let (journal, stored) = MemoryJournal::start(&leader, 64);
                    let leader = leader.with_journal(Box::new(journal));
                    let first = spawn_controller(&ex, leader, epoch, listen(&ex, "127.0.0.1:0".parse().unwrap()));
                    // The standby's address is known before it serves: it binds only once
                    // it leads.
                    let standby_addr = free_addr();
                    let acs = Acs::new([first.local_addr, standby_addr]).unwrap();
                    let mut config = device_config("dev0", 7);
                    config.rto = Duration::from_millis(20);
                    config.dead = Duration::from_secs(2);
                    let agent = spawn_device(&ex, Device::new(config, epoch.now()), epoch, dial(acs, "dev0"));
                    let seen = Arc::new(Mutex::new(Seen::default()));
                    let _app = ex.spawn(application(agent.events.clone(), agent.commands.clone(), seen.clone()));
                    ac_event(&first.events, 10, "dev0's third state", |e| matches!(e, ControllerEvent::StateStored { version, .. } if *version >= 3)).await;
                    // The leader stops answering and is gone.
                    first.commands.close();
                    let _ = first.task.await;
                    let acked = seen.lock().unwrap().acked.clone();
                    let stored = stored.lock().unwrap().clone();
                    let standby = controller(&epoch)
                        .restore(&stored.snapshot, stored.changes.iter().map(Vec::as_slice), epoch.now())
                        .unwrap();
                    let known = acked.iter().find(|(c, _)| c == "comp0").map_or(0, |(_, n)| *n);
                    let lkgs = standby.lkgs(pcxses_core::controller::ComputationId(0)).map(|(s, _)| decode_count(s));
                    assert!(lkgs.is_some_and(|n| n >= known), "restored {lkgs:?}, dev0 knew {known}");
                    let second = spawn_controller(&ex, standby, epoch, listen(&ex, standby_addr));
                    // dev0 finds the standby and reports to it in the session it had.
                    ac_event(&second.events, 10, "a state at the standby", |e| {
                        assert!(!matches!(e, ControllerEvent::DeviceJoined { .. } | ControllerEvent::DeviceFailed { .. }), "{e:?}");
                        matches!(e, ControllerEvent::StateStored { .. })
                    }).await;
                    let seen = seen.lock().unwrap();
                    assert_eq!(seen.joins, 1, "dev0 joined again");
                    assert!(seen.installs.is_empty(), "{:?}", seen.installs);
                }));
            }

            #[test]
            fn a_dead_agent_s_computation_resumes_on_the_other_device() {
                let ex = Arc::new(smol::Executor::new());
                smol::block_on(ex.run(async {
                    let epoch = Epoch::new();
                    let ac = spawn_controller(&ex, controller(&epoch), epoch, listen(&ex, "127.0.0.1:0".parse().unwrap()));
                    let mut apps = Vec::new();
                    let mut agents = Vec::new();
                    for (i, name) in ["dev0", "dev1"].into_iter().enumerate() {
                        let agent = spawn_device(&ex, device(name, 100 + i as u64, &epoch), epoch, dial(ac.local_addr, name));
                        let seen = Arc::new(Mutex::new(Seen::default()));
                        let app = ex.spawn(application(agent.events.clone(), agent.commands.clone(), seen.clone()));
                        apps.push((app, seen));
                        agents.push(agent);
                    }
                    // dev0 reports a few states of comp0.
                    ac_event(&ac.events, 10, "dev0's fifth state", |e| matches!(e, ControllerEvent::StateStored { version, device, .. } if device.0 == 0 && *version >= 5)).await;
                    // Kill dev0's agent and application: no GOOD_BYE, just silence.
                    let (app0, seen0) = apps.remove(0);
                    let agent0 = agents.remove(0);
                    drop(agent0.task);
                    drop(app0);
                    let acked0 = seen0.lock().unwrap().acked.clone();
                    let failed = ac_event(&ac.events, 10, "the death", |e| matches!(e, ControllerEvent::DeviceFailed { .. })).await;
                    assert!(matches!(failed, ControllerEvent::DeviceFailed { device, .. } if device.0 == 0));
                    let done = ac_event(&ac.events, 10, "the migration", |e| matches!(e, ControllerEvent::MigrationCompleted { .. })).await;
                    assert!(matches!(done, ControllerEvent::MigrationCompleted { to, .. } if to.0 == 1));
                    // dev1 restored comp0 from at least the last state dev0 knew the AC held.
                    Timer::after(Duration::from_millis(100)).await;
                    let seen1 = apps[0].1.lock().unwrap().clone();
                    let (_, restored) = seen1.installs.iter().find(|(c, _)| c == "comp0").cloned().expect("an install of comp0");
                    let known = acked0.iter().find(|(c, _)| c == "comp0").map_or(0, |(_, n)| *n);
                    assert!(restored >= known && restored >= 5, "restored {restored}, dev0 knew {known}");
                    // And dev1 keeps reporting comp0's state from there.
                    ac_event(&ac.events, 10, "comp0's state from dev1", |e| matches!(e, ControllerEvent::StateStored { device, computation, .. } if device.0 == 1 && computation.0 == 0)).await;
                }));
            }

            #[test]
            fn an_agent_that_says_good_bye_is_not_recovered() {
                let ex = Arc::new(smol::Executor::new());
                smol::block_on(ex.run(async {
                    let epoch = Epoch::new();
                    let ac = spawn_controller(&ex, controller(&epoch), epoch, listen(&ex, "127.0.0.1:0".parse().unwrap()));
                    let agent = spawn_device(&ex, device("dev0", 7, &epoch), epoch, dial(ac.local_addr, "dev0"));
                    ac_event(&ac.events, 10, "the join", |e| matches!(e, ControllerEvent::DeviceJoined { .. })).await;
                    agent.commands.send(DeviceCommand::Leave).await.unwrap();
                    ac_event(&ac.events, 10, "the leave", |e| matches!(e, ControllerEvent::DeviceLeft { .. })).await;
                    // Several dead intervals later: no death, no migration.
                    Timer::after(Duration::from_millis(600)).await;
                    while let Ok(e) = ac.events.try_recv() {
                        assert!(!matches!(e, ControllerEvent::DeviceFailed { .. } | ControllerEvent::MigrationStarted { .. }), "{e:?}");
                    }
                }));
            }
        }
    };
}

/// The QUIC adapter with the TLS settings of a development PKI shared by the tests: every
/// device gets the certificate of its own name.
mod quic {
    use std::net::SocketAddr;
    use std::sync::{Arc, OnceLock};

    use pcxses_transport_quic::certs::{DevCa, AC_NAME};
    use pcxses_transport_quic::tls::{certificates, private_key};
    use pcxses_transport_quic::{ClientTls, ConnectionLimits, Dial, Listener, ServerTls};

    static CA: OnceLock<DevCa> = OnceLock::new();

    pub fn ca() -> &'static DevCa {
        CA.get_or_init(|| DevCa::new("test CA").unwrap())
    }

    pub fn server_tls() -> ServerTls {
        let ac = ca().ac().unwrap();
        ServerTls {
            cert_chain: certificates(ac.cert_pem.as_bytes(), "ac").unwrap(),
            key: private_key(ac.key_pem.as_bytes(), "ac").unwrap(),
            device_ca: certificates(ca().issued().cert_pem.as_bytes(), "ca").unwrap(),
        }
    }

    /// Device `name`'s settings, with a certificate `issuer` made for `holder`.
    pub fn client_tls(issuer: &DevCa, holder: &str) -> ClientTls {
        let cert = issuer.device(holder).unwrap();
        ClientTls {
            ac_ca: certificates(ca().issued().cert_pem.as_bytes(), "ca").unwrap(),
            ac_name: AC_NAME.into(),
            cert_chain: certificates(cert.cert_pem.as_bytes(), holder).unwrap(),
            key: private_key(cert.key_pem.as_bytes(), holder).unwrap(),
            alpn: pcxses_transport_quic::tls::ALPN.to_vec(),
        }
    }

    pub fn listen(ex: &Arc<smol::Executor<'static>>, addr: SocketAddr) -> Listener {
        let limits = ConnectionLimits::default();
        pcxses_transport_quic::listen(ex, addr, &server_tls(), limits).unwrap()
    }

    pub fn dial(acs: impl Into<pcxses_driver::Acs>, device: &str) -> Dial {
        Dial::new(acs, &client_tls(ca(), device)).unwrap()
    }
}

transport_suite!(
    udp,
    listen: |_ex, addr| pcxses_transport_udp::bind(addr, pcxses_transport_udp::V6_LINKS).unwrap(),
    dial: |acs, _device| pcxses_transport_udp::Dial::new(acs)
);
transport_suite!(
    quic_suite,
    listen: |ex, addr| quic::listen(ex, addr),
    dial: |acs, device| quic::dial(acs, device)
);
transport_suite!(
    tcp,
    listen: |ex, addr| {
        pcxses_transport_tcp::listen(ex, addr, pcxses_transport_tcp::ConnectionLimits::default())
            .unwrap()
    },
    dial: |acs, _device| pcxses_transport_tcp::Dial::new(acs)
);

/// An AC on TCP with the default connection limits, on a port of the system's choice.
fn tcp_controller(
    ex: &Arc<smol::Executor<'static>>,
    epoch: Epoch,
) -> pcxses_transport_tcp::ControllerHandle {
    let limits = pcxses_transport_tcp::ConnectionLimits::default();
    let listener =
        pcxses_transport_tcp::listen(ex, "127.0.0.1:0".parse().unwrap(), limits).unwrap();
    pcxses_transport_tcp::spawn_controller(ex, controller(&epoch), epoch, listener)
}

#[test]
fn a_dropped_tcp_connection_is_not_a_death() {
    let ex = Arc::new(smol::Executor::new());
    smol::block_on(ex.run(async {
        let epoch = Epoch::new();
        let ac = tcp_controller(&ex, epoch);
        let proxy = TcpProxy::start(ac.local_addr);
        let dial = pcxses_transport_tcp::Dial::new(proxy.address());
        let agent = pcxses_transport_tcp::spawn_device(&ex, device("dev0", 5, &epoch), epoch, dial);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let _app = ex.spawn(application(
            agent.events.clone(),
            agent.commands.clone(),
            seen.clone(),
        ));
        ac_event(&ac.events, 10, "a first state", |e| {
            matches!(e, ControllerEvent::StateStored { .. })
        })
        .await;
        // Only what the cuts cause counts from here.
        while ac.events.try_recv().is_ok() {}
        for _ in 0..3 {
            proxy.cut();
            proxy.restore();
            // The device reconnects, moves its session to the new connection, and its state
            // keeps arriving on the same session.
            ac_event(&ac.events, 10, "a state after the cut", |e| {
                assert!(
                    !matches!(
                        e,
                        ControllerEvent::DeviceFailed { .. } | ControllerEvent::DeviceJoined { .. }
                    ),
                    "{e:?}"
                );
                matches!(e, ControllerEvent::StateStored { .. })
            })
            .await;
        }
        assert!(
            proxy.forwarded() >= 4,
            "the device reconnected after every cut"
        );
        // Over two dead intervals later, still no death and no new session.
        let until = std::time::Instant::now() + Duration::from_millis(1_200);
        while std::time::Instant::now() < until {
            if let Ok(e) = ac.events.try_recv() {
                assert!(
                    !matches!(
                        e,
                        ControllerEvent::DeviceFailed { .. } | ControllerEvent::DeviceJoined { .. }
                    ),
                    "{e:?}"
                );
            }
            Timer::after(Duration::from_millis(20)).await;
        }
    }));
}

/// A TCP device told to leave and stopped at once still writes the GOOD_BYE it queued
/// before its connection closes. (Documented use drives the device until `Left`; a QUIC
/// connection closes with its streams, so there only that order delivers it.)
#[test]
fn a_tcp_good_bye_sent_just_before_the_agent_stops_still_leaves() {
    let ex = Arc::new(smol::Executor::new());
    smol::block_on(ex.run(async {
        let epoch = Epoch::new();
        let ac = tcp_controller(&ex, epoch);
        let dial = pcxses_transport_tcp::Dial::new(ac.local_addr);
        let agent = pcxses_transport_tcp::spawn_device(&ex, device("dev0", 7, &epoch), epoch, dial);
        // The device knows its session.
        while !matches!(agent.events.recv().await, Ok(DeviceEvent::Joined { .. })) {}
        agent.commands.send(DeviceCommand::Leave).await.unwrap();
        agent.commands.close();
        agent.task.await.expect("the agent stops cleanly");
        ac_event(&ac.events, 10, "the leave", |e| {
            assert!(!matches!(e, ControllerEvent::DeviceFailed { .. }), "{e:?}");
            matches!(e, ControllerEvent::DeviceLeft { .. })
        })
        .await;
    }));
}

/// An AC that accepts each connection and closes it at once (refused, evicted, expired)
/// gets a device's attempts at the pace of its backoff, not as fast as they fail.
#[test]
fn a_device_backs_off_from_connections_closed_at_once() {
    let ex = Arc::new(smol::Executor::new());
    smol::block_on(ex.run(async {
        let epoch = Epoch::new();
        let listener = smol::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let dial = pcxses_transport_tcp::Dial::new(addr);
        let _agent =
            pcxses_transport_tcp::spawn_device(&ex, device("dev0", 5, &epoch), epoch, dial);
        // Over one second, backoff from 50 ms doubling (±50% jitter) allows at most about
        // seven attempts; without it, thousands come.
        let until = std::time::Instant::now() + Duration::from_secs(1);
        let mut accepted = 0;
        loop {
            let next = async { listener.accept().await.ok() }
                .or(async {
                    Timer::at(until).await;
                    None
                })
                .await;
            match next {
                Some((stream, _)) => {
                    accepted += 1;
                    drop(stream);
                }
                None => break,
            }
        }
        assert!(
            (1..=12).contains(&accepted),
            "{accepted} connections in one second"
        );
    }));
}

/// Refusals of the QUIC adapter: none of them reaches the AC's state.
mod quic_refusals {
    use super::*;
    use pcxses_core::wire::RejectReason;
    use pcxses_core::Stats;
    use pcxses_transport_quic::certs::DevCa;
    use pcxses_transport_quic::ClientTls;

    /// Runs an AC and one device agent `name` with `tls` for a while (several join
    /// retries); returns what the device saw, what the AC saw, and the AC's counters.
    fn attempt(name: &str, tls: ClientTls) -> (Vec<DeviceEvent>, Vec<ControllerEvent>, Stats) {
        let ex = Arc::new(smol::Executor::new());
        smol::block_on(ex.run(async {
            let epoch = Epoch::new();
            let listener = quic::listen(&ex, "127.0.0.1:0".parse().unwrap());
            let ac =
                pcxses_transport_quic::spawn_controller(&ex, controller(&epoch), epoch, listener);
            let dial = pcxses_transport_quic::Dial::new(ac.local_addr, &tls).unwrap();
            let agent =
                pcxses_transport_quic::spawn_device(&ex, device(name, 3, &epoch), epoch, dial);
            Timer::after(Duration::from_millis(1_500)).await;
            let seen: Vec<DeviceEvent> =
                std::iter::from_fn(|| agent.events.try_recv().ok()).collect();
            let ac_saw: Vec<ControllerEvent> =
                std::iter::from_fn(|| ac.events.try_recv().ok()).collect();
            let stats = *ac.stats.lock().unwrap();
            (seen, ac_saw, stats)
        }))
    }

    fn assert_never_reached_the_ac(
        seen: &[DeviceEvent],
        ac_saw: &[ControllerEvent],
        stats: &Stats,
    ) {
        assert!(seen.is_empty(), "{seen:?}");
        assert!(ac_saw.is_empty(), "{ac_saw:?}");
        assert_eq!(*stats, Stats::default());
    }

    #[test]
    fn a_certificate_from_another_ca_gets_no_connection() {
        let stranger = DevCa::new("stranger").unwrap();
        let (seen, ac_saw, stats) = attempt("dev0", quic::client_tls(&stranger, "dev0"));
        assert_never_reached_the_ac(&seen, &ac_saw, &stats);
    }

    #[test]
    fn a_wrong_alpn_gets_no_connection() {
        let mut tls = quic::client_tls(quic::ca(), "dev0");
        tls.alpn = b"pcxses/0".to_vec();
        let (seen, ac_saw, stats) = attempt("dev0", tls);
        assert_never_reached_the_ac(&seen, &ac_saw, &stats);
    }

    #[test]
    fn a_valid_certificate_claiming_another_device_is_refused() {
        // dev0's certificate, and a GOOD_MORNING from "dev1".
        let (seen, ac_saw, stats) = attempt("dev1", quic::client_tls(quic::ca(), "dev0"));
        assert!(
            seen.iter().any(|e| matches!(
                e,
                DeviceEvent::Rejected {
                    reason: RejectReason::Unauthorized
                }
            )),
            "{seen:?}"
        );
        assert!(ac_saw.is_empty(), "{ac_saw:?}");
        assert!(stats.unauthorized >= 1, "{stats:?}");
        assert_eq!(stats.received, stats.unauthorized, "{stats:?}");
    }

    #[test]
    fn a_client_without_a_certificate_gets_no_connection() {
        let ex = Arc::new(smol::Executor::new());
        smol::block_on(ex.run(async {
            let epoch = Epoch::new();
            let listener = quic::listen(&ex, "127.0.0.1:0".parse().unwrap());
            let ac = pcxses_transport_quic::spawn_controller(&ex, controller(&epoch), epoch, listener);
            let mut roots = rustls::RootCertStore::empty();
            let ca = pcxses_transport_quic::tls::certificates(
                quic::ca().issued().cert_pem.as_bytes(),
                "ca",
            )
            .unwrap();
            roots.add(ca[0].clone()).unwrap();
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            tls.alpn_protocols = vec![pcxses_transport_quic::tls::ALPN.to_vec()];
            let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            let mut endpoint = quinn::Endpoint::new(
                quinn::EndpointConfig::default(),
                None,
                socket,
                Arc::new(quinn::SmolRuntime),
            )
            .unwrap();
            endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
            // TLS 1.3 lets the client finish first; the AC then refuses and closes.
            // The close may come at any step: before the handshake completes on this side,
            // or before the stream opens.
            let attempt = async {
                let connection = match endpoint.connect(ac.local_addr, "ac").ok()?.await {
                    Ok(connection) => connection,
                    Err(closed) => return Some(closed),
                };
                if let Ok((mut send, _recv)) = connection.open_bi().await {
                    let gm = [1u8, 0, 4, b'd', b'e', b'v', b'0'];
                    let mut frame = Vec::new();
                    pcxses_core::frame::push_frame(&gm, &mut frame);
                    let _ = send.write_all(&frame).await;
                }
                Some(connection.closed().await)
            };
            let closed = attempt
                .or(async {
                    Timer::after(Duration::from_secs(5)).await;
                    panic!("the AC kept a connection without a client certificate");
                })
                .await;
            // The AC closed it with the TLS alert "certificate required" (116 = 0x74).
            let closed = closed.expect("a connection the AC then closed");
            assert!(
                matches!(&closed, quinn::ConnectionError::ConnectionClosed(c) if c.error_code == quinn::TransportErrorCode::crypto(116)),
                "{closed:?}"
            );
            Timer::after(Duration::from_millis(200)).await;
            assert!(ac.events.try_recv().is_err());
            assert_eq!(*ac.stats.lock().unwrap(), Stats::default());
        }));
    }
}
