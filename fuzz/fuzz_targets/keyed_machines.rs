//! Any bytes, fed to an AC and a device that joined in pre-shared-key mode (and to the
//! AC as if from a device without a key): never a panic; every refusal is counted once; a
//! refused bottle leaves the AC's snapshot as it was.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pcxses_core::controller::{ComputationSpec, DeviceSpec};
use pcxses_core::psk::Psk;
use pcxses_core::{
    Controller, ControllerConfig, Device, DeviceConfig, Instant, LinkId, MemoryRepository,
    Output,
};

const DEV: LinkId = LinkId(1);

/// Hands every pending transmit of each machine to the other.
fn exchange(ac: &mut Controller, dev: &mut Device, now: Instant) {
    for _ in 0..8 {
        let mut to_ac = Vec::new();
        while let Output::Transmit(t) = dev.poll_output() {
            to_ac.push(t.bytes.to_vec());
        }
        let mut to_dev = Vec::new();
        loop {
            match ac.poll_output() {
                Output::Transmit(t) => to_dev.push(t.bytes.to_vec()),
                Output::Event(_) => {}
                Output::Timeout(_) => break,
            }
        }
        if to_ac.is_empty() && to_dev.is_empty() {
            return;
        }
        for b in to_ac {
            let _ = ac.handle_receive(now, DEV, &b, None);
        }
        for b in to_dev {
            let _ = dev.handle_receive(now, &b);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let key = Psk([7; 32]);
    let mut keyed = DeviceSpec::new("dev0", &["comp0"]);
    keyed.psk = Some(key.clone());
    let plain = DeviceSpec::new("dev1", &["comp1"]);
    let comps = vec![
        ComputationSpec::new("comp0", "c0"),
        ComputationSpec::new("comp1", "c1"),
    ];
    let mut repo = MemoryRepository::default();
    repo.insert("c0", vec![1; 100]);
    repo.insert("c1", vec![2; 100]);
    let now = Instant::from_millis(1);
    let mut ac = Controller::new(
        ControllerConfig::new(3, vec![keyed, plain], comps),
        repo,
        now,
    )
    .expect("valid configuration");
    let mut cfg = DeviceConfig::new("dev0", 5);
    cfg.psk = Some(key);
    let mut dev = Device::new(cfg, now);
    dev.handle_timeout(now);
    exchange(&mut ac, &mut dev, now);
    assert!(dev.session().is_some(), "the keyed device joins");
    // The input: pieces of at most 255 bytes, each led by its length.
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let (piece, tail) = tail.split_at(usize::from(len).min(tail.len()));
        rest = tail;
        for from in [DEV, LinkId(2)] {
            let before = ac.snapshot();
            let refused = ac.stats().rejected();
            if ac.handle_receive(now, from, piece, None)
                .is_err()
            {
                assert_eq!(ac.stats().rejected(), refused + 1);
                assert_eq!(ac.snapshot(), before);
            }
        }
        let refused = dev.stats().rejected();
        if dev.handle_receive(now, piece)
            .is_err()
        {
            assert_eq!(dev.stats().rejected(), refused + 1);
        }
        while let Output::Transmit(_) | Output::Event(_) = ac.poll_output() {}
        while let Output::Transmit(_) | Output::Event(_) = dev.poll_output() {}
    }
});
