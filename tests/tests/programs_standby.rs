//! Active/standby ACs on a real etcd: `pcxses-ac` processes with one configuration, each on
//! an address of its own, and devices given every address. The leader is killed; a
//! standby takes the area over with every state the devices were told was stored, the
//! devices move to it in their sessions, and no device is declared dead or runs a
//! computation twice.

use std::time::{Duration, Instant};

use pcxses_tests::etcd::{Cluster, Server};
use pcxses_tests::noise::Noise;
use pcxses_tests::ports::free_addr;
use pcxses_tests::programs::{
    ac_executable, acked_counters, assert_restored_at_least, is, Output, Proc, Setup, World,
};
use pcxses_tests::tcp_proxy::TcpProxy;
use serde_json::Value;

/// The `[etcd]` section of an area whose keys start with `prefix` on the etcd members at
/// `endpoints`, with a lease of 2 s.
fn etcd_section(endpoints: &[String], prefix: &str) -> String {
    let quoted: Vec<String> = endpoints.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "\n[etcd]\nendpoints = [{}]\nprefix = \"{prefix}\"\nlease_ttl_s = 2\n",
        quoted.join(", ")
    )
}

/// An area of three devices on UDP whose ACs have the configuration `sections` besides
/// their registry: HELLO every 250 ms and a dead interval of 5 s, which a takeover is
/// shorter than; `keyed` gives every device a pre-shared key.
fn area(test: &str, sections: &str, keyed: bool) -> World {
    World::with(
        "udp",
        test,
        Setup {
            code_bytes: 4_000,
            keyed,
            hello_ms: Some(250),
            dead_ms: Some(5_000),
            ac_sections: sections,
            ..Setup::default()
        },
    )
}

/// Waits until `standby` led for the `n`-th time (from 1) and restored the area, and checks
/// that it restored every state the devices were told was stored before it led; returns
/// when the test read that it led.
fn assert_takeover(standby: &Proc, n: usize, devices: &[(&str, Proc)], context: &str) -> Instant {
    standby.wait_for_nth("the standby to lead", n, |v| is(v, "leading"));
    let (led, _) = standby.stamped(|v| is(v, "leading")).remove(n - 1);
    let acked = acked_counters(devices, led);
    standby.wait_for_nth("the restored states", n, |v| is(v, "restored"));
    let restored = standby.events(|v| is(v, "restored")).remove(n - 1);
    assert_restored_at_least(&restored, &acked, context);
    led
}

/// Another AC of `w`'s area, listening on `listen` once it leads; started, and standing by
/// or leading.
fn another_ac(w: &World, listen: &str) -> Proc {
    another_ac_with(w, "ac.toml", listen)
}

/// Another AC of `w`'s area, with the configuration file `config` of `w`'s directory.
fn another_ac_with(w: &World, config: &str, listen: &str) -> Proc {
    let ac = Proc::spawn(
        std::process::Command::new(ac_executable())
            .current_dir(&w.dir)
            .args([
                "--config",
                config,
                "--transport",
                "udp",
                "--events",
                "jsonl",
            ])
            .args(["--listen", listen]),
    );
    ac.wait_for("the AC to stand by", |v| is(v, "standby"));
    ac
}

/// Panics if a device joined more than once or was given a computation, or if an AC
/// declared a death or moved a computation: with no death, every computation runs on the
/// one device that started it.
fn assert_no_computation_moved(devices: &[(&str, Proc)], acs: &[&Proc]) {
    for (name, d) in devices {
        let joins = d.events(|v| is(v, "joined") || is(v, "stop") || is(v, "rejected"));
        assert_eq!(joins.len(), 1, "{name} joined again: {joins:?}");
        let installs = d.events(|v| is(v, "install"));
        assert!(installs.is_empty(), "{name} was given {installs:?}");
    }
    for ac in acs {
        let moves = ac.events(|v| is(v, "dead") || is(v, "migration_started"));
        assert!(moves.is_empty(), "{moves:?}");
    }
}

#[test]
fn a_standby_takes_over_a_killed_leader_with_every_acknowledged_state_and_keyed_sessions() {
    let etcd = Server::start();
    let mut w = area(
        "standby",
        &etcd_section(std::slice::from_ref(&etcd.url), "/pcxses/standby"),
        true,
    );
    let standby_addr = free_addr().to_string();
    let standby = another_ac(&w, &standby_addr);
    w.standbys.push(standby_addr);

    let devices = w.joined_devices();
    for (_, d) in &devices {
        d.wait_for_nth("states", 3, |v| is(v, "state_stored"));
    }
    // Every device stored three states with the leader meanwhile.
    assert!(
        standby.events(|v| is(v, "leading")).is_empty(),
        "the standby led beside the leader"
    );

    let leader = w.ac.take().unwrap();
    leader.signal("KILL");
    leader.wait_closed();

    assert_takeover(&standby, 1, &devices, "after the takeover");
    // The devices move to the new leader and carry on there in their keyed sessions.
    for (name, d) in &devices {
        let computation = format!("counter-{name}");
        let seen = d
            .events(|v| is(v, "state_stored") && v["computation"] == computation.as_str())
            .len();
        d.wait_for_nth("states stored by the new leader", seen + 3, |v| {
            is(v, "state_stored") && v["computation"] == computation.as_str()
        });
    }
    assert_no_computation_moved(&devices, &[&standby]);
}

#[test]
fn twenty_leaders_killed_at_random_moments_lose_no_acknowledged_state_and_no_device() {
    const KILLS: usize = 20;
    let etcd = Server::start();
    let mut w = area(
        "kills",
        &etcd_section(std::slice::from_ref(&etcd.url), "/pcxses/kills"),
        false,
    );
    let addrs = [w.addr.clone(), free_addr().to_string()];
    let mut acs = [w.ac.take(), Some(another_ac(&w, &addrs[1]))];
    w.standbys.push(addrs[1].clone());
    let devices = w.joined_devices();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    println!("seed {seed}");
    let mut noise = Noise(seed);
    let mut takeovers = Vec::with_capacity(KILLS);
    let mut leader = 0;
    // Every dead AC's process, to check its events at the end.
    let mut gone = Vec::new();
    for kill in 0..KILLS {
        // The devices store states with the leader for a random while (1 to 30 of the
        // first device's states, 50 ms to 1.5 s), then it dies.
        let ac = acs[leader].take().expect("the leader runs");
        let (first, d) = &devices[0];
        let stored = d.events(|v| is(v, "state_stored")).len();
        let more = 1 + (noise.draw() % 30) as usize;
        d.wait_for_nth(&format!("{first}'s states"), stored + more, |v| {
            is(v, "state_stored")
        });
        ac.signal("KILL");
        let killed = Instant::now();
        ac.wait_closed();
        gone.push(ac);

        let standby = acs[1 - leader].as_ref().expect("the standby runs");
        let n = standby.events(|v| is(v, "leading")).len() + 1;
        let led = assert_takeover(standby, n, &devices, &format!("takeover {kill}"));
        // Every device is served by the new leader: it stores a state there.
        let mut served = killed;
        for (name, d) in &devices {
            let after_led = |o: &Output| {
                let lines = o.lines.iter().zip(&o.received);
                lines
                    .filter(|(v, at)| is(v, "state_stored") && **at > led)
                    .map(|(_, at)| *at)
                    .next()
            };
            d.wait_until(&format!("{name} served by the new leader"), |o| {
                after_led(o).is_some()
            });
            let at = after_led(&d.output.0.lock().unwrap()).expect("waited for");
            served = served.max(at);
        }
        takeovers.push(served.duration_since(killed));
        // The killed AC comes back and stands by.
        acs[leader] = Some(another_ac(&w, &addrs[leader]));
        leader = 1 - leader;
    }
    let mut ms: Vec<u128> = takeovers.iter().map(Duration::as_millis).collect();
    ms.sort_unstable();
    println!(
        "takeover, kill to every device served, over {KILLS}: median {} ms, worst {} ms",
        ms[KILLS / 2],
        ms[KILLS - 1]
    );
    let mut every_ac: Vec<&Proc> = gone.iter().collect();
    every_ac.extend(acs.iter().flatten());
    assert_no_computation_moved(&devices, &every_ac);
}

/// When each of `ac`'s events matching `f` happened on the wall clock, in milliseconds since
/// the Unix epoch: its `at_ms` set beside the wall clock by its first `standby` line.
fn unix_times(ac: &Proc, f: impl Fn(&Value) -> bool) -> Vec<f64> {
    let standby = ac.events(|v| is(v, "standby")).remove(0);
    let offset = standby["unix_ms"].as_f64().unwrap() - standby["at_ms"].as_f64().unwrap();
    let events = ac.events(f);
    events
        .iter()
        .map(|v| v["at_ms"].as_f64().unwrap() + offset)
        .collect()
}

/// The wall-clock time of `ac`'s `n`-th (from 1) event `event`, which it waits for.
fn nth_unix(ac: &Proc, n: usize, event: &str) -> f64 {
    ac.wait_for_nth(event, n, |v| is(v, event));
    ac.events(|v| is(v, event))[n - 1]["unix_ms"]
        .as_f64()
        .unwrap()
}

/// Waits until every device stored `more` states after what it stored so far.
fn wait_for_states(devices: &[(&str, Proc)], more: usize) {
    for (name, d) in devices {
        let seen = d.events(|v| is(v, "state_stored")).len();
        d.wait_for_nth(&format!("{name}'s states"), seen + more, |v| {
            is(v, "state_stored")
        });
    }
}

#[test]
fn a_leader_cut_off_from_etcd_or_frozen_stops_acknowledging_within_its_lease_and_stands_by() {
    let etcd = Server::start();
    let etcd_addr: std::net::SocketAddr = etcd.url.trim_start_matches("http://").parse().unwrap();
    // Each AC reaches etcd through a proxy of its own, which the test cuts.
    let proxies = [TcpProxy::start(etcd_addr), TcpProxy::start(etcd_addr)];
    let mut w = area(
        "cut",
        &etcd_section(&[proxies[0].url()], "/pcxses/cut"),
        false,
    );
    let config = std::fs::read_to_string(w.dir.join("ac.toml")).unwrap();
    let config_b = config.replace(&proxies[0].url(), &proxies[1].url());
    std::fs::write(w.dir.join("ac-b.toml"), config_b).unwrap();
    // A listens on an address of its own whenever it leads: the one devices are given.
    let first = w.ac.take().unwrap();
    first.signal("TERM");
    first.wait_closed();
    w.addr = free_addr().to_string();
    let a = another_ac(&w, &w.addr);
    a.wait_for("A to lead", |v| is(v, "listening"));
    let addr_b = free_addr().to_string();
    let b = another_ac_with(&w, "ac-b.toml", &addr_b);
    w.standbys.push(addr_b);
    let devices = w.joined_devices();
    wait_for_states(&devices, 3);

    // A loses etcd: it says so and stops within its lease; B takes over once the lease has
    // expired, and the devices move to it.
    proxies[0].cut();
    let deposed = nth_unix(&a, 1, "deposed");
    let b_leads = nth_unix(&b, 1, "leading");
    assert!(
        deposed < b_leads,
        "A was deposed at {deposed}, B led at {b_leads}"
    );
    a.wait_for_nth("A to stand by again", 2, |v| is(v, "standby"));
    wait_for_states(&devices, 3);

    // B freezes and loses etcd; A, back in reach of etcd, takes over. B wakes after A led:
    // it acknowledges nothing more, says so, and stands by.
    proxies[0].restore();
    b.signal("STOP");
    proxies[1].cut();
    let a_leads = nth_unix(&a, 2, "leading");
    wait_for_states(&devices, 3);
    let b_stored = b.events(|v| is(v, "state_stored")).len();
    b.signal("CONT");
    let b_deposed = nth_unix(&b, 1, "deposed");
    b.wait_for_nth("B to stand by again", 2, |v| is(v, "standby"));
    proxies[1].restore();
    wait_for_states(&devices, 3);
    assert!(a_leads < b_deposed);
    assert_eq!(
        b.events(|v| is(v, "state_stored")).len(),
        b_stored,
        "B acknowledged after it woke"
    );
    assert_eq!(b.events(|v| is(v, "leading")).len(), 1, "B led again");

    // From both event streams: every state A acknowledged before it was deposed, it did
    // before B led; every one B acknowledged, after B led and before A led again; every
    // one A acknowledged after that, after A led again.
    let stored = |v: &Value| is(v, "state_stored");
    let (a_acks, b_acks) = (unix_times(&a, stored), unix_times(&b, stored));
    assert!(!b_acks.is_empty(), "B acknowledged nothing");
    for at in &a_acks {
        assert!(
            *at < b_leads || *at > a_leads,
            "A acknowledged at {at}, B led from {b_leads} to {a_leads}"
        );
    }
    for at in &b_acks {
        assert!(
            *at > b_leads && *at < a_leads,
            "B acknowledged at {at}, B led from {b_leads} to {a_leads}"
        );
    }
    assert_no_computation_moved(&devices, &[&a, &b]);
}

#[test]
fn the_leader_keeps_serving_when_a_member_of_a_three_member_etcd_dies_and_nothing_is_lost() {
    let mut cluster = Cluster::start(3);
    let mut w = area(
        "members",
        &etcd_section(&cluster.urls(), "/pcxses/members"),
        false,
    );
    let standby_addr = free_addr().to_string();
    let standby = another_ac(&w, &standby_addr);
    w.standbys.push(standby_addr);
    let devices = w.joined_devices();
    wait_for_states(&devices, 3);

    // A member dies, one the cluster did not elect raft leader (a raft leader's death,
    // with the election it takes, is `etcd_cluster`'s): the AC keeps serving through the
    // other two, and the standby stands by.
    cluster.kill((cluster.raft_leader() + 1) % 3);
    wait_for_states(&devices, 8);
    let leader = w.ac.take().unwrap();
    let trouble = leader.events(|v| is(v, "journal_failed") || is(v, "deposed"));
    assert!(trouble.is_empty(), "{trouble:?}");
    assert!(standby.events(|v| is(v, "leading")).is_empty());

    // Everything acknowledged, before and after the member died, is in the two members
    // left: the standby restores it when the leader dies too.
    leader.signal("KILL");
    leader.wait_closed();
    assert_takeover(&standby, 1, &devices, "after a member and the leader died");
    wait_for_states(&devices, 3);
    assert_no_computation_moved(&devices, &[&leader, &standby]);
}
