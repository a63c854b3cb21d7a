//! End-to-end: the status and metrics endpoint of a real `pcxses-ac`, on 127.0.0.1, as
//! devices join and one is killed, checked against the AC's own event stream; and
//! `pcxses-ac status` showing it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use pcxses_ac::http::{fetch, fetch_status};
use pcxses_ac::status::StatusDoc;
use pcxses_tests::ports::free_addr;
use pcxses_tests::programs::{ac_executable, is, World};

/// Every sample of a Prometheus text exposition, by name and labels.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').expect("a sample");
            (key.to_string(), value.parse().expect("a number"))
        })
        .collect()
}

/// The sum of the samples of `name` over its labels (0 when it has none).
fn total(s: &BTreeMap<String, f64>, name: &str) -> f64 {
    s.iter()
        .filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{")))
        .map(|(_, v)| v)
        .sum()
}

/// Waits until `done` holds of the status, at most 20 s.
fn status_where(addr: SocketAddr, what: &str, done: impl Fn(&StatusDoc) -> bool) -> StatusDoc {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let doc = fetch_status(addr).expect("the status endpoint answers");
        if done(&doc) {
            return doc;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {doc:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn status_and_metrics_agree_with_the_events_after_a_device_is_killed() {
    let mut w = World::new("tcp", "status", 4_000);
    // The endpoint from the configuration file, as an operator sets it.
    let endpoint = free_addr();
    let config = w.dir.join("ac.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text += &format!("\n[status]\nlisten = \"{endpoint}\"\n");
    std::fs::write(&config, text).unwrap();
    w.ac = None;
    w.start_ac(None);

    let alpha = w.device("alpha");
    let beta = w.device("beta");
    let gamma = w.device("gamma");
    let ac = w.ac();
    ac.wait_for_nth("three joins", 3, |v| is(v, "device_joined"));
    ac.wait_for("a state of counter-beta", |v| {
        is(v, "state_stored") && v["computation"] == "counter-beta"
    });
    let up = status_where(endpoint, "three devices alive", |d| {
        d.devices.iter().all(|d| d.liveness == "alive")
    });
    for joined in ac.events(|v| is(v, "device_joined")) {
        let d = (up.devices.iter())
            .find(|d| d.name == joined["device"])
            .expect("a device of the registry");
        assert_eq!(d.session.as_deref(), joined["session"].as_str(), "{d:?}");
        assert!(d.last_hello_ms.is_some_and(|ms| ms < 600), "{d:?}");
        assert_eq!(d.hosted, [format!("counter-{}", d.name)]);
    }

    // beta dies; counter-beta moves.
    beta.signal("KILL");
    beta.wait_closed();
    ac.wait_for("beta declared dead", |v| {
        is(v, "device_failed") && v["device"] == "beta"
    });
    let moved = ac.wait_for("counter-beta to move", |v| {
        is(v, "migration_completed") && v["computation"] == "counter-beta"
    });
    let host = moved["to"].as_str().unwrap().to_string();
    assert_ne!(host, "beta");

    let stats_before = ac.events(|v| is(v, "stats")).len();
    ac.wait_for_nth("a stats event", stats_before + 1, |v| is(v, "stats"));
    let states_before = ac.events(|v| is(v, "state_stored")).len();
    let stats_seen = ac.events(|v| is(v, "stats"));
    let metrics = samples(&fetch(endpoint, "/metrics").expect("the metrics endpoint answers"));
    let doc = fetch_status(endpoint).unwrap();
    // The next stats event bounds the counters from above.
    ac.wait_for_nth("a stats event", stats_seen.len() + 1, |v| is(v, "stats"));
    let stats_after = ac.events(|v| is(v, "stats"))[stats_seen.len()].clone();
    let stats_last = stats_seen.last().unwrap();

    let get = |k: &str| {
        *metrics
            .get(k)
            .unwrap_or_else(|| panic!("no {k}: {metrics:?}"))
    };
    let count = |kind: &str| ac.events(|v| is(v, kind)).len() as f64;
    // Devices, from the census.
    let mut liveness = BTreeMap::new();
    for v in ac.events(|v| is(v, "device_joined") || is(v, "device_failed")) {
        liveness.insert(v["device"].to_string(), is(&v, "device_joined"));
    }
    let alive = liveness.values().filter(|&&up| up).count() as f64;
    assert_eq!((alive, liveness.len()), (2.0, 3), "{liveness:?}");
    assert_eq!(get("pcxses_ac_devices{state=\"alive\"}"), alive);
    assert_eq!(get("pcxses_ac_devices{state=\"dead\"}"), 3.0 - alive);
    assert_eq!(
        get("pcxses_ac_devices_joined_total"),
        count("device_joined")
    );
    assert_eq!(
        get("pcxses_ac_devices_failed_total"),
        count("device_failed")
    );
    // MORPHs, from the events.
    assert_eq!(
        get("pcxses_ac_morphs_started_total"),
        count("migration_started")
    );
    assert_eq!(
        get("pcxses_ac_morphs_completed_total"),
        count("migration_completed")
    );
    assert_eq!(
        total(&metrics, "pcxses_ac_morphs_failed_total"),
        count("migration_failed")
    );
    assert_eq!(
        get("pcxses_ac_morph_duration_seconds_count"),
        count("migration_completed")
    );
    assert_eq!(get("pcxses_ac_quarantines_total"), count("quarantined"));
    // States: at least those printed before the scrape, at most those printed after.
    let stored = get("pcxses_ac_states_stored_total");
    assert!(stored >= states_before as f64, "{stored} < {states_before}");
    assert!(
        stored <= count("state_stored"),
        "{stored} > {}",
        count("state_stored")
    );
    // The controller's counters, between the stats events around the scrape.
    let between = |key: &str, value: f64| {
        let (lo, hi) = (stats_last[key].as_f64(), stats_after[key].as_f64());
        if let (Some(lo), Some(hi)) = (lo, hi) {
            assert!(lo <= value && value <= hi, "{key}: {lo} <= {value} <= {hi}");
        }
    };
    between("received", get("pcxses_ac_bottles_received_total"));
    between("rejected", total(&metrics, "pcxses_ac_refused_total"));
    assert!(get("pcxses_ac_hellos_total") > 0.0);

    // The status, against the same events.
    let by_name = |name: &str| doc.devices.iter().find(|d| d.name == name).unwrap();
    let dead = by_name("beta");
    assert_eq!((dead.liveness.as_str(), &dead.session), ("dead", &None));
    assert!(dead.hosted.is_empty());
    let comp = (doc.computations.iter())
        .find(|c| c.name == "counter-beta")
        .unwrap();
    assert_eq!(comp.placement, "running");
    assert_eq!(comp.host.as_deref(), Some(host.as_str()));
    assert_eq!(comp.home.as_deref(), Some("beta"));
    assert_eq!(comp.lkgs_bytes, 8, "a counter's state");
    assert!(by_name(&host).hosted.contains(&"counter-beta".to_string()));
    for d in ["alpha", "gamma"] {
        assert_eq!(by_name(d).liveness, "alive");
    }

    // `pcxses-ac status`, as an operator runs it beside the configuration.
    let out = Command::new(ac_executable())
        .current_dir(&w.dir)
        .args(["status", "--config", "ac.toml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8(out.stdout).unwrap();
    let line = |start: &str| {
        (table.lines())
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line for {start} in\n{table}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(line("beta ")[1], "dead");
    assert_eq!(line("alpha ")[1], "alive");
    assert_eq!(line("counter-beta ")[1..3], ["running", host.as_str()]);
    drop((alpha, gamma));
}

#[test]
fn the_status_command_says_why_it_cannot_reach_an_ac() {
    let out = Command::new(ac_executable())
        .args(["status", "--addr", &free_addr().to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/status"), "{err}");
}
