//! A controller with `n` registered and joined devices, and one encoded HELLO per device.

use pcxses_core::controller::{ComputationSpec, DeviceSpec};
use pcxses_core::wire::{Bottle, GoodMorning, Hello, JoinNonce, StateMode};
use pcxses_core::{Controller, ControllerConfig, Instant, LinkId, MemoryRepository, Output};

/// The HELLO and dead intervals every device of [`join_all`] proposes.
pub const INTERVALS_MS: (u32, u32) = (1_000, 3_000);

pub fn config(n: usize) -> ControllerConfig {
    let devices = (0..n)
        .map(|i| DeviceSpec::new(&format!("device-{i:06}"), &[&format!("comp-{i:06}")]))
        .collect();
    let comps = (0..n)
        .map(|i| ComputationSpec::new(&format!("comp-{i:06}"), "code"))
        .collect();
    ControllerConfig::new(1, devices, comps)
}

/// Joins every device; returns each device's HELLO, encoded (8 bytes each), in one flat
/// array as a receive path would hold them.
#[allow(dead_code)]
pub fn join_all(ac: &mut Controller, n: usize) -> Vec<[u8; 8]> {
    join_all_with(ac, n, INTERVALS_MS)
}

/// [`join_all`] with the devices proposing `(hello_ms, dead_ms)`.
pub fn join_all_with(
    ac: &mut Controller,
    n: usize,
    (hello_ms, dead_ms): (u32, u32),
) -> Vec<[u8; 8]> {
    let mut hellos = Vec::with_capacity(n);
    let mut buf = [0u8; 128];
    for i in 0..n {
        let name = format!("device-{i:06}");
        let gm = Bottle::GoodMorning(GoodMorning {
            device: &name,
            nonce: JoinNonce((i as u64).to_le_bytes()),
            mode: StateMode::InHello,
            hello_ms,
            dead_ms,
            max_bottle: 1200,
        });
        let len = gm.encode(&mut buf).unwrap();
        let now = Instant::from_millis(0);
        ac.handle_receive(now, LinkId(i as u64), &buf[..len], None)
            .unwrap();
        let mut session = None;
        loop {
            match ac.poll_output() {
                Output::Transmit(t) => {
                    if let Ok(Bottle::GoodMorningAck(a)) =
                        Bottle::decode(t.bytes, &Default::default())
                    {
                        session = Some(a.session);
                    }
                }
                Output::Event(_) => {}
                Output::Timeout(_) => break,
            }
        }
        let hello = Bottle::Hello(Hello {
            session: session.unwrap(),
            seq: 7,
            state: None,
        });
        let len = hello.encode(&mut buf).unwrap();
        hellos.push(buf[..len].try_into().expect("an 8-byte HELLO"));
    }
    hellos
}

#[allow(dead_code)]
pub fn new_controller(n: usize) -> Controller {
    Controller::new(
        config(n),
        MemoryRepository::default(),
        Instant::from_millis(0),
    )
    .unwrap()
}
