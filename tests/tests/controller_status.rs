//! The controller's status and census: what an operator is shown of devices and
//! computations, before and after a device dies and its computation moves.

use std::time::Duration;

use pcxses_core::controller::{ComputationId, DeviceId, Liveness, Placement};
use pcxses_core::LinkId;
use pcxses_tests::lab::Lab;

#[test]
fn a_settled_lab_shows_every_device_alive_with_its_computation() {
    let lab = Lab::settled_with(3, |_| {});
    let status = lab.ac().status(lab.now);
    for (i, d) in status.devices.iter().enumerate() {
        assert_eq!(d.liveness, Liveness::Alive, "{d:?}");
        let s = d.session.as_ref().expect("a live session");
        // Device i has link i + 1.
        assert_eq!(s.link, LinkId(i as u64 + 1));
        assert_eq!(s.hosted, [ComputationId(i as u32)]);
        assert_eq!(s.hello, Duration::from_millis(100));
        assert!(s.last_hello_age <= s.hello, "{s:?}");
    }
    let comp0 = &status.computations[0];
    assert_eq!(comp0.placement, Placement::Running(DeviceId(0)));
    assert_eq!(comp0.lkgs_len, b"state".len());
    assert!(comp0.lkgs_version >= 1);
    let census = lab.ac().census();
    assert_eq!((census.alive, census.dead, census.running), (3, 0, 3));
    assert!(lab.ac().stats().hellos > 0);
}

#[test]
fn a_dead_device_shows_dead_and_its_computation_where_it_moved() {
    let mut lab = Lab::settled_with(3, |_| {});
    lab.crash(0);
    lab.run(1000);
    let status = lab.ac().status(lab.now);
    let dev0 = &status.devices[0];
    assert_eq!(dev0.liveness, Liveness::Dead);
    assert!(dev0.session.is_none());
    let comp0 = &status.computations[0];
    let Placement::Running(host) = comp0.placement else {
        panic!("comp0 should run again: {comp0:?}");
    };
    assert_ne!(host, DeviceId(0));
    // Its LKGS went with it, and its new host lists it.
    assert_eq!(comp0.lkgs_len, b"state".len());
    let hosted = &status.devices[host.0 as usize]
        .session
        .as_ref()
        .unwrap()
        .hosted;
    assert!(hosted.contains(&ComputationId(0)), "{hosted:?}");
    let census = lab.ac().census();
    assert_eq!((census.alive, census.dead), (2, 1));
}
