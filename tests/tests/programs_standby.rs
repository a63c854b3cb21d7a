//! Active/standby ACs on a real etcd: two `pcxses-ac` processes with one configuration;
//! the leader is killed, and the standby takes the area over with every state the devices
//! were told was stored, and without a false death.

use pcxses_tests::etcd::Server;
use pcxses_tests::programs::{
    ac_executable, acked_counters, assert_restored_at_least, is, Proc, Setup, World,
};

#[test]
fn a_standby_takes_over_a_killed_leader_with_every_acknowledged_state() {
    let etcd = Server::start();
    let sections = format!(
        "\n[etcd]\nendpoints = [\"{}\"]\nprefix = \"/pcxses/standby\"\nlease_ttl_s = 2\n",
        etcd.url
    );
    // Sessions outlive a takeover that is shorter than the dead interval.
    let mut w = World::with(
        "udp",
        "standby",
        Setup {
            code_bytes: 4_000,
            hello_ms: Some(250),
            dead_ms: Some(5_000),
            ac_sections: &sections,
            ..Setup::default()
        },
    );
    // The standby listens where the leader does: it binds the address only once it leads.
    let standby = Proc::spawn(
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
            .args(["--listen", &w.addr]),
    );
    standby.wait_for("the standby", |v| is(v, "standby"));

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
    let acked = acked_counters(&devices);

    let restored = standby.wait_for("the restored states", |v| is(v, "restored"));
    standby.wait_for("the new leader to listen", |v| is(v, "listening"));
    assert_restored_at_least(&restored, &acked, "after the takeover");
    // The devices carry on with the new leader, in their sessions, and nobody died.
    for (name, d) in &devices {
        let computation = format!("counter-{name}");
        let seen = d
            .events(|v| is(v, "state_stored") && v["computation"] == computation.as_str())
            .len();
        d.wait_for_nth("states stored by the new leader", seen + 3, |v| {
            is(v, "state_stored") && v["computation"] == computation.as_str()
        });
        assert_eq!(
            d.events(|v| is(v, "joined")).len(),
            1,
            "{name} joined again"
        );
    }
    let deaths = standby.events(|v| is(v, "dead") || is(v, "migration_started"));
    assert!(deaths.is_empty(), "{deaths:?}");
}
