//! The AC's table of IPv6 sources over real sockets on [::1]: a flood of junk from many
//! source ports takes no lasting slot, so a new device still joins and a joined one keeps
//! its link.

use std::sync::Arc;
use std::time::Duration;

use pcxses_core::controller::{ComputationSpec, DeviceSpec};
use pcxses_core::{
    Controller, ControllerConfig, ControllerEvent, Device, DeviceConfig, Epoch, MemoryRepository,
};
use pcxses_transport_udp::{spawn_controller_with, spawn_device};
use smol::channel::Receiver;
use smol::future::FutureExt;
use smol::Timer;

fn controller(epoch: &Epoch) -> Controller {
    let devices = vec![
        DeviceSpec::new("dev0", &["comp0"]),
        DeviceSpec::new("dev1", &["comp1"]),
    ];
    let comps = vec![
        ComputationSpec::new("comp0", "comp0.bin"),
        ComputationSpec::new("comp1", "comp1.bin"),
    ];
    let mut repo = MemoryRepository::default();
    repo.insert("comp0.bin", vec![0xc0; 100]);
    repo.insert("comp1.bin", vec![0xc1; 100]);
    let config = ControllerConfig::new(11, devices, comps);
    Controller::new(config, repo, epoch.now()).expect("valid configuration")
}

fn device(name: &str, seed: u64, epoch: &Epoch) -> Device {
    let mut config = DeviceConfig::new(name, seed);
    config.hello = Duration::from_millis(100);
    config.dead = Duration::from_millis(500);
    config.join_retry = Duration::from_millis(20);
    config.join_retry_max = Duration::from_millis(200);
    Device::new(config, epoch.now())
}

/// Waits up to 10 s for device number `device` to join; no device may fail meanwhile.
async fn joined(events: &Receiver<ControllerEvent>, device: u32) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let e = async { events.recv().await.ok() }
            .or(async {
                Timer::at(deadline).await;
                None
            })
            .await
            .unwrap_or_else(|| panic!("device {device} did not join"));
        match e {
            ControllerEvent::DeviceJoined { device: d, .. } if d.0 == device => return,
            ControllerEvent::DeviceFailed { .. } => panic!("{e:?}"),
            _ => {}
        }
    }
}

#[test]
fn a_flood_from_many_source_ports_neither_locks_out_a_new_device_nor_evicts_a_joined_one() {
    const SLOTS: usize = 16;
    const JUNK: usize = 20 * SLOTS;
    let ex = Arc::new(smol::Executor::new());
    smol::block_on(ex.run(async {
        let epoch = Epoch::new();
        let ac = spawn_controller_with(
            &ex,
            controller(&epoch),
            epoch,
            "[::1]:0".parse().unwrap(),
            SLOTS,
        )
        .await
        .unwrap();
        let _dev0 = spawn_device(&ex, device("dev0", 7, &epoch), epoch, ac.local_addr)
            .await
            .unwrap();
        joined(&ac.events, 0).await;
        // One byte of junk from each of twenty times as many source ports as there are
        // slots: an unknown protocol version (answered with a REJECT) or a bottle that
        // does not decode (not answered).
        for i in 0..JUNK {
            let s = std::net::UdpSocket::bind("[::1]:0").unwrap();
            let junk = if i % 2 == 0 { 0xff } else { 0x01 };
            s.send_to(&[junk], ac.local_addr).unwrap();
        }
        let refused = || ac.stats.lock().unwrap().rejected();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while refused() < JUNK as u64 {
            assert!(
                std::time::Instant::now() < deadline,
                "the junk never arrived"
            );
            Timer::after(Duration::from_millis(10)).await;
        }
        // A device with a new address joins, and dev0 is never declared dead.
        let _dev1 = spawn_device(&ex, device("dev1", 8, &epoch), epoch, ac.local_addr)
            .await
            .unwrap();
        joined(&ac.events, 1).await;
        Timer::after(Duration::from_millis(1_000)).await;
        while let Ok(e) = ac.events.try_recv() {
            assert!(!matches!(e, ControllerEvent::DeviceFailed { .. }), "{e:?}");
        }
    }));
}
