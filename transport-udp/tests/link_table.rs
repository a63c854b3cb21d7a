//! The AC's table of IPv6 sources over real sockets on [::1]: a flood of junk from many
//! source ports takes no lasting slot, so a new device still joins and a joined one keeps
//! its link.

use std::sync::Arc;
use std::time::Duration;

use pcxses_core::Epoch;
use pcxses_driver::testing::{assert_no_device_failed, controller, device, eventually, joined};
use pcxses_transport_udp::{bind, spawn_controller, spawn_device, Dial};
use smol::Timer;

#[test]
fn a_flood_from_many_source_ports_neither_locks_out_a_new_device_nor_evicts_a_joined_one() {
    const SLOTS: usize = 16;
    const JUNK: usize = 20 * SLOTS;
    let ex = Arc::new(smol::Executor::new());
    smol::block_on(ex.run(async {
        let epoch = Epoch::new();
        let socket = bind("[::1]:0".parse().unwrap(), SLOTS).unwrap();
        let ac = spawn_controller(&ex, controller(&epoch), epoch, socket);
        let socket = Dial::new(ac.local_addr);
        let _dev0 = spawn_device(&ex, device("dev0", 7, &epoch), epoch, socket);
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
        eventually(10, "the junk", || refused() >= JUNK as u64).await;
        // A device with a new address joins, and dev0 is never declared dead.
        let socket = Dial::new(ac.local_addr);
        let _dev1 = spawn_device(&ex, device("dev1", 8, &epoch), epoch, socket);
        joined(&ac.events, 1).await;
        Timer::after(Duration::from_millis(1_000)).await;
        assert_no_device_failed(&ac.events);
    }));
}
