//! A sample AC directory: the crate's sample configuration and repository copied to a
//! directory of its own, with a journal that holds real states.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use pcxses_ac::check;
use pcxses_ac::journal::FileJournal;
use pcxses_core::{Device, DeviceConfig, Instant, LinkId, Output};

/// The crate's `config` directory.
pub fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

/// A fresh directory holding a copy of the sample configuration (with `extra` added to
/// its `[ac]` section) and repository; returns the configuration's path.
pub fn ac_dir(name: &str, extra: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pcxses-ac-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("repo/objects")).unwrap();
    let text = std::fs::read_to_string(sample().join("ac.toml")).unwrap();
    let text = text.replacen("[ac]\n", &format!("[ac]\n{extra}\n"), 1);
    std::fs::write(dir.join("ac.toml"), text).unwrap();
    for f in ["repo/index.toml", "counter.txt"] {
        std::fs::copy(sample().join(f), dir.join(f)).unwrap();
    }
    for blob in std::fs::read_dir(sample().join("repo/objects")).unwrap() {
        let blob = blob.unwrap();
        std::fs::copy(blob.path(), dir.join("repo/objects").join(blob.file_name())).unwrap();
    }
    dir.join("ac.toml")
}

/// The states device `alpha` reports for `counter-alpha`, in order.
pub const STATES: [&[u8]; 3] = [b"state one", b"state two!", b"state three"];

/// An AC directory whose journal (`journal` beside the configuration) holds a session of
/// device `alpha` and each of [`STATES`] acknowledged in turn, the last one in the
/// journal's last record. Returns the configuration's path.
pub fn with_journal(name: &str) -> PathBuf {
    let config = ac_dir(name, "seed = 7\njournal = \"journal\"");
    let start = Instant::from_millis(0);
    let checked = check::check(&config, start).unwrap();
    let path = config.with_file_name("journal");
    let mut journal = FileJournal::resume(&path, true, None).unwrap();
    journal.start(&checked.controller).unwrap();
    let mut ac = checked.controller.with_journal(Box::new(journal));
    let mut dc = DeviceConfig::new("alpha", 9);
    dc.hello = Duration::from_millis(100);
    dc.dead = Duration::from_millis(300);
    let mut dev = Device::new(dc, start);
    let mut next = 0;
    for ms in 0..2_000u64 {
        let now = Instant::from_millis(ms);
        if ms % 500 == 499 && next < STATES.len() {
            dev.set_state(now, "counter-alpha", STATES[next]).unwrap();
            next += 1;
        }
        dev.handle_timeout(now);
        ac.handle_timeout(now);
        let mut to_ac = Vec::new();
        while let Output::Transmit(t) = dev.poll_output() {
            to_ac.push(t.bytes.to_vec());
        }
        for bytes in to_ac {
            let _ = ac.handle_receive(now, LinkId(1), &bytes, None);
        }
        let mut to_dev = Vec::new();
        loop {
            match ac.poll_output() {
                Output::Transmit(t) => to_dev.push(t.bytes.to_vec()),
                Output::Event(_) => {}
                Output::Timeout(_) => break,
            }
        }
        for bytes in to_dev {
            let _ = dev.handle_receive(now, &bytes);
        }
    }
    let (state, _) = ac.lkgs(pcxses_core::controller::ComputationId(0)).unwrap();
    assert_eq!(state, STATES[2]);
    config
}
