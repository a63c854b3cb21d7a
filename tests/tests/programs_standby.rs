//! Active/standby ACs on a real etcd: `pcxses-ac` processes with one configuration, each on
//! an address of its own, and devices given every address. The leader is killed; a
//! standby takes the area over with every state the devices were told was stored, the
//! devices move to it in their sessions, and no device is declared dead or runs a
//! computation twice.

use std::time::{Duration, Instant};

use pcxses_tests::etcd::Server;
use pcxses_tests::noise::Noise;
use pcxses_tests::programs::{
    ac_executable, acked_counters, assert_restored_at_least, is, Output, Proc, Setup, World,
};

/// The `[etcd]` section of an area on `etcd`.
fn etcd_section(etcd: &Server, prefix: &str) -> String {
    format!(
        "\n[etcd]\nendpoints = [\"{}\"]\nprefix = \"{prefix}\"\nlease_ttl_s = 2\n",
        etcd.url
    )
}

/// An address on 127.0.0.1 whose UDP port is free now.
fn free_udp_addr() -> String {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().to_string()
}

/// Another AC of `w`'s area, listening on `listen` once it leads; started, and standing by
/// or leading.
fn another_ac(w: &World, listen: &str) -> Proc {
    let ac = Proc::spawn(
        std::process::Command::new(ac_executable())
            .current_dir(&w.dir)
            .args([
                "--config",
                "ac.toml",
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
    let sections = etcd_section(&etcd, "/pcxses/standby");
    // Sessions outlive a takeover that is shorter than the dead interval.
    let mut w = World::with(
        "udp",
        "standby",
        Setup {
            code_bytes: 4_000,
            keyed: true,
            hello_ms: Some(250),
            dead_ms: Some(5_000),
            ac_sections: &sections,
            ..Setup::default()
        },
    );
    let standby_addr = free_udp_addr();
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

    standby.wait_for("the standby to lead", |v| is(v, "leading"));
    let (led, _) = standby.stamped(|v| is(v, "leading")).remove(0);
    let acked = acked_counters(&devices, led);
    let restored = standby.wait_for("the restored states", |v| is(v, "restored"));
    standby.wait_for("the new leader to listen", |v| is(v, "listening"));
    assert_restored_at_least(&restored, &acked, "after the takeover");
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
    let sections = etcd_section(&etcd, "/pcxses/kills");
    let mut w = World::with(
        "udp",
        "kills",
        Setup {
            code_bytes: 4_000,
            hello_ms: Some(250),
            dead_ms: Some(6_000),
            ac_sections: &sections,
            ..Setup::default()
        },
    );
    let addrs = [w.addr.clone(), free_udp_addr()];
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
        // The devices store states with the leader for a random while, then it dies.
        let ac = acs[leader].take().expect("the leader runs");
        std::thread::sleep(Duration::from_millis(50 + noise.draw() % 1_500));
        ac.signal("KILL");
        let killed = Instant::now();
        ac.wait_closed();
        gone.push(ac);

        let standby = acs[1 - leader].as_ref().expect("the standby runs");
        let n = standby.events(|v| is(v, "leading")).len() + 1;
        standby.wait_for_nth("the standby to lead", n, |v| is(v, "leading"));
        let (led, _) = standby.stamped(|v| is(v, "leading")).remove(n - 1);
        let acked = acked_counters(&devices, led);
        standby.wait_for_nth("the restored states", n, |v| is(v, "restored"));
        let restored = standby.events(|v| is(v, "restored")).remove(n - 1);
        assert_restored_at_least(&restored, &acked, &format!("takeover {kill}"));
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
