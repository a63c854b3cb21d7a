//! A snapshot written by an earlier build still restores: the AC's durable format does not
//! depend on how its configuration spells durations.

use std::time::Duration;

use pcxses_core::controller::{ComputationSpec, DeviceSpec};
use pcxses_core::{
    Controller, ControllerConfig, Device, DeviceConfig, Instant, LinkId, MemoryRepository, Output,
};

/// The snapshot of [`settled`]'s AC, as the build whose configuration took milliseconds
/// (`hello_ms`, `dead_ms`) wrote it: `pump`'s session has a HELLO interval of 100 ms
/// (`100`), a dead interval of 400 ms (`144, 3`) and a fence interval of 300 ms
/// (`172, 2`), and `flow`'s LKGS is `state-7`.
const RECORDED: &[u8] = &[
    4, 1, 237, 222, 202, 159, 11, 150, 171, 237, 169, 8, 214, 174, 226, 151, 9, 251, 184, 184, 161,
    6, 2, 4, 112, 117, 109, 112, 1, 204, 167, 207, 185, 3, 1, 116, 75, 36, 85, 112, 241, 51, 239,
    0, 100, 144, 3, 172, 2, 144, 9, 176, 9, 1, 0, 4, 102, 108, 111, 119, 1, 1, 1, 0, 0, 0, 0, 5,
    115, 112, 97, 114, 101, 0, 0, 0, 0, 0, 0, 1, 4, 102, 108, 111, 119, 7, 115, 116, 97, 116, 101,
    45, 55, 1, 204, 167, 207, 185, 3, 0, 0, 1, 4, 112, 117, 109, 112, 0, 0, 0,
];

fn config() -> ControllerConfig {
    ControllerConfig::lan(
        1,
        vec![
            DeviceSpec::new("pump", &["flow"]),
            DeviceSpec::new("spare", &[]),
        ],
        vec![ComputationSpec::new("flow", "flow.wasm")],
    )
}

fn repo() -> MemoryRepository {
    let mut repo = MemoryRepository::default();
    repo.insert("flow.wasm", vec![0u8; 64]);
    repo
}

/// An AC whose device `pump` joined with a 100 ms HELLO and a 400 ms dead interval and
/// stored the state `state-7`, driven in one loop for two seconds.
fn settled() -> Controller {
    let mut ac = Controller::new(config(), repo(), Instant::from_millis(0)).expect("valid");
    let mut device_config = DeviceConfig::lan("pump", 0x5eed);
    device_config.hello = Duration::from_millis(100);
    device_config.dead = Duration::from_millis(400);
    let mut device = Device::new(device_config, Instant::from_millis(0));
    let (mut to_ac, mut to_device): (Vec<Vec<u8>>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
    for step in 0..40 {
        let now = Instant::from_millis(step * 50);
        device.handle_timeout(now);
        for bytes in to_device.drain(..) {
            device.handle_receive(now, &bytes).expect("the AC's bottle");
        }
        if step == 20 {
            device.set_state(now, "flow", b"state-7").expect("joined");
        }
        loop {
            match device.poll_output() {
                Output::Transmit(t) => to_ac.push(t.bytes.to_vec()),
                Output::Event(_) => {}
                Output::Timeout(_) => break,
            }
        }
        ac.handle_timeout(now);
        for bytes in to_ac.drain(..) {
            ac.handle_receive(now, LinkId(1), &bytes, None)
                .expect("the device's bottle");
        }
        loop {
            match ac.poll_output() {
                Output::Transmit(t) => to_device.push(t.bytes.to_vec()),
                Output::Event(_) => {}
                Output::Timeout(_) => break,
            }
        }
    }
    ac
}

#[test]
fn the_snapshot_is_written_as_before() {
    assert_eq!(settled().snapshot(), RECORDED);
}

#[test]
fn a_snapshot_of_before_restores() {
    let later = Instant::from_millis(60_000);
    let ac = Controller::new(config(), repo(), later).expect("a valid configuration");
    let ac = ac.restore(RECORDED, [], later).expect("restores");
    assert_eq!(ac.snapshot(), RECORDED);
    let flow = ac.computation_id("flow").expect("flow");
    assert_eq!(ac.lkgs(flow).expect("an LKGS").0, b"state-7");
}
