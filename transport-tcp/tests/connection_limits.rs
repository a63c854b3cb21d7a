//! The AC's connection bounds over real sockets on 127.0.0.1: peers that connect and never
//! send a bottle the controller accepts cannot keep devices out, and are closed.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use pcxses_core::frame::push_frame;
use pcxses_core::{ControllerEvent, Epoch};
use smol::io::AsyncWriteExt;
use smol::Timer;

#[test]
fn a_full_connection_table_evicts_unproven_holders_so_a_device_still_joins() {
    let ex = Arc::new(smol::Executor::new());
    smol::block_on(ex.run(async {
        let epoch = Epoch::new();
        let cap = 8;
        let ac = spawn_ac(&ex, epoch, limits(cap, 60_000, 60_000)).await;
        let stats = ac.connections.clone().expect("TCP has connections");
        let mut holders = Vec::new();
        for _ in 0..cap + 4 {
            holders.push(hold(ac.local_addr, &HEADER_AND_ONE_BYTE).await);
        }
        eventually(10, "the holders beyond the cap handled", || {
            stats.evicted.load(Relaxed) + stats.refused.load(Relaxed) >= 4
        })
        .await;
        assert_eq!(stats.open.load(Relaxed), cap as u64);
        let _agent = join_dev0(&ex, epoch, ac.local_addr, &ac.events).await;
        assert!(stats.open.load(Relaxed) <= cap as u64);
        assert!(stats.evicted.load(Relaxed) >= 5);
        // The evicted holders' connections were closed: the oldest five at least.
        for (i, h) in holders.iter_mut().take(5).enumerate() {
            assert!(closed_by_peer(h, 5).await, "holder {i} still open");
        }
    }));
}

#[test]
fn a_table_full_of_proven_connections_refuses_newcomers_and_keeps_its_device() {
    let ex = Arc::new(smol::Executor::new());
    smol::block_on(ex.run(async {
        let epoch = Epoch::new();
        let ac = spawn_ac(&ex, epoch, limits(1, 60_000, 60_000)).await;
        let stats = ac.connections.clone().expect("TCP has connections");
        let _agent = join_dev0(&ex, epoch, ac.local_addr, &ac.events).await;
        let mut holder = hold(ac.local_addr, &HEADER_AND_ONE_BYTE).await;
        assert!(
            closed_by_peer(&mut holder, 5).await,
            "the newcomer was kept"
        );
        assert!(stats.refused.load(Relaxed) >= 1);
        assert_eq!(stats.evicted.load(Relaxed), 0);
        // Several dead intervals later the device is still alive.
        Timer::after(Duration::from_millis(1_500)).await;
        assert_no_device_failed(&ac.events);
    }));
}

#[test]
fn connections_without_an_accepted_bottle_are_closed_at_their_deadline() {
    let ex = Arc::new(smol::Executor::new());
    smol::block_on(ex.run(async {
        let epoch = Epoch::new();
        let ac = spawn_ac(&ex, epoch, limits(64, 300, 60_000)).await;
        let stats = ac.connections.clone().expect("TCP has connections");
        let _agent = join_dev0(&ex, epoch, ac.local_addr, &ac.events).await;
        // Silent; an unfinished frame; complete frames the controller refuses.
        let mut junk = Vec::new();
        for _ in 0..50 {
            push_frame(&[0xff, 0xff, 0xff], &mut junk);
        }
        let mut holders = [
            hold(ac.local_addr, &[]).await,
            hold(ac.local_addr, &HEADER_AND_ONE_BYTE).await,
            hold(ac.local_addr, &junk).await,
        ];
        for (i, h) in holders.iter_mut().enumerate() {
            assert!(closed_by_peer(h, 5).await, "holder {i} still open");
        }
        assert_eq!(stats.unproven_expired.load(Relaxed), 3);
        // The device's connection is proven: it stays, and so does the device.
        Timer::after(Duration::from_millis(1_000)).await;
        assert_eq!(stats.unproven_expired.load(Relaxed), 3);
        assert_eq!(stats.open.load(Relaxed), 1);
        assert_no_device_failed(&ac.events);
    }));
}

#[test]
fn a_proven_connection_that_falls_silent_is_closed_after_the_idle_timeout() {
    let ex = Arc::new(smol::Executor::new());
    smol::block_on(ex.run(async {
        let epoch = Epoch::new();
        let ac = spawn_ac(&ex, epoch, limits(64, 60_000, 300)).await;
        let stats = ac.connections.clone().expect("TCP has connections");
        // A valid GOOD_MORNING proves the connection; then nothing more.
        let mut frame = Vec::new();
        push_frame(&good_morning("dev0", &epoch), &mut frame);
        let mut peer = hold(ac.local_addr, &frame).await;
        ac_event(&ac.events, 10, "the join", |e| {
            matches!(e, ControllerEvent::DeviceJoined { .. })
        })
        .await;
        assert!(
            closed_by_peer(&mut peer, 5).await,
            "the idle connection stayed open"
        );
        assert_eq!(stats.idle_expired.load(Relaxed), 1);
        assert_eq!(stats.unproven_expired.load(Relaxed), 0);
        let _ = peer.close().await;
    }));
}

#[test]
fn a_connection_flooding_junk_frames_starves_no_device() {
    let ex = Arc::new(smol::Executor::new());
    smol::block_on(ex.run(async {
        let epoch = Epoch::new();
        let ac = spawn_ac(&ex, epoch, limits(64, 60_000, 60_000)).await;
        // A thread of its own writes junk frames as fast as the AC reads them.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flooder = {
            let (stop, addr) = (stop.clone(), ac.local_addr);
            std::thread::spawn(move || {
                use std::io::Write;
                let mut junk = Vec::new();
                while junk.len() < 60_000 {
                    push_frame(&[0xff, 0xff, 0xff], &mut junk);
                }
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                let mut sent = 0usize;
                while !stop.load(Relaxed) && s.write_all(&junk).is_ok() {
                    sent += junk.len();
                }
                sent
            })
        };
        eventually(10, "the flood", || {
            ac.stats.lock().unwrap().rejected() > 10_000
        })
        .await;
        // A device joins during the flood and is never declared dead.
        let _agent = join_dev0(&ex, epoch, ac.local_addr, &ac.events).await;
        let until = std::time::Instant::now() + Duration::from_millis(1_500);
        while std::time::Instant::now() < until {
            if let Ok(e) = ac.events.try_recv() {
                assert!(!matches!(e, ControllerEvent::DeviceFailed { .. }), "{e:?}");
            }
            Timer::after(Duration::from_millis(10)).await;
        }
        let before = ac.stats.lock().unwrap().rejected();
        Timer::after(Duration::from_millis(100)).await;
        assert!(
            ac.stats.lock().unwrap().rejected() > before,
            "the flood had stopped"
        );
        stop.store(true, Relaxed);
        drop(ac);
        // The AC's connections close as the executor runs: join the flooder off it.
        let sent = smol::unblock(move || flooder.join().unwrap()).await;
        assert!(sent > 0);
    }));
}
