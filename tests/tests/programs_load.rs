//! The load generator as an operator runs it: `pcxses-load config` writes an AC
//! configuration, the AC serves it, and `pcxses-load run` drives real devices against it
//! and reports what they and the AC did, with the AC's `/proc` figures sampled over the run.

use std::path::Path;
use std::process::{Command, Output};

use pcxses_tests::programs::{ac_executable, is, load_executable, Proc};
use serde_json::Value;

const DEVICES: u64 = 300;

/// `pcxses-load config` for `devices` devices into `dir`.
fn write_config(dir: &Path, devices: &str) {
    let config = Command::new(load_executable())
        .args([
            "config",
            "--devices",
            devices,
            "--listen",
            "127.0.0.1:0",
            "--dir",
        ])
        .arg(dir)
        .output()
        .unwrap();
    assert!(config.status.success(), "{config:?}");
}

/// `pcxses-load start` of an AC on `dir`'s configuration, settled for a second.
fn start_ac(dir: &Path) -> Output {
    Command::new(load_executable())
        .args(["start", "--settle-s", "1", "--ac"])
        .arg(ac_executable())
        .arg("--config")
        .arg(dir.join("ac.toml"))
        .output()
        .unwrap()
}

#[test]
fn the_load_generator_drives_every_device_and_samples_the_ac_over_the_run() {
    let dir = std::env::temp_dir().join(format!("pcxses-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let devices = DEVICES.to_string();
    write_config(&dir, &devices);
    let ac = Proc::spawn(
        Command::new(ac_executable())
            .args(["--events", "jsonl", "--config"])
            .arg(dir.join("ac.toml")),
    );
    let listening = ac.wait_for("the AC to listen", |v| is(v, "listening"));
    let addr = listening["addr"].as_str().unwrap();
    let samples = dir.join("samples.jsonl");
    let run = Command::new(load_executable())
        .args([
            "run",
            "--ac",
            addr,
            "--devices",
            &devices,
            "--hello-ms",
            "200",
        ])
        .args(["--dead-ms", "1000", "--seconds", "3", "--ramp-ms", "500"])
        .args(["--ac-pid", &ac.child.id().to_string(), "--samples"])
        .arg(&samples)
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    let summary: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(summary["devices"], DEVICES, "{summary}");
    assert_eq!(summary["false_deaths"], 0, "{summary}");
    // Every device HELLOs five times a second, and the AC answers each.
    let expected = (DEVICES * 5) as f64;
    for figure in ["hellos_per_s", "hello_acks_per_s"] {
        let per_s = summary[figure].as_f64().unwrap();
        assert!(
            per_s > expected * 0.8 && per_s < expected * 1.2,
            "{figure}: {summary}"
        );
    }
    let cpu_per_hello = summary["ac_cpu_us_per_hello"].as_f64().unwrap();
    assert!(cpu_per_hello >= 0.0, "{summary}");
    let (rss, peak) = (
        summary["ac_rss_kb"].as_u64().unwrap(),
        summary["ac_peak_rss_kb"].as_u64().unwrap(),
    );
    assert!(rss > 0 && peak >= rss, "{summary}");
    let lines: Vec<Value> = std::fs::read_to_string(&samples)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let measured = lines.iter().filter(|l| l["phase"] == "measure").count();
    assert!(measured >= 4, "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| l["rss_kb"].as_u64().is_some_and(|kb| kb > 0)),
        "{lines:?}"
    );
    drop(ac);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_start_of_an_ac_is_timed_and_its_memory_read() {
    let dir = std::env::temp_dir().join(format!("pcxses-start-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    write_config(&dir, "1000");
    let start = start_ac(&dir);
    assert!(start.status.success(), "{start:?}");
    let summary: Value = serde_json::from_slice(&start.stdout).unwrap();
    let ready = summary["ready_s"].as_f64().unwrap();
    assert!(ready > 0.0, "{summary}");
    let kb = |figure: &str| summary[figure].as_u64().unwrap();
    assert!(
        kb("rss_kb_ready") > 0 && kb("rss_kb_settled") > 0,
        "{summary}"
    );
    assert!(
        kb("peak_rss_kb") >= kb("rss_kb_ready").max(kb("rss_kb_settled")),
        "{summary}"
    );
    assert_eq!(summary["settle_s"], 1.0);
    // A configuration the AC refuses is an error, not a figure.
    std::fs::write(dir.join("ac.toml"), "[ac]\nlisten = 1\n").unwrap();
    let refused = start_ac(&dir);
    assert!(!refused.status.success(), "{refused:?}");
    assert!(refused.stdout.is_empty(), "{refused:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
