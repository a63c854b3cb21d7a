//! Leadership and the fenced journal against a real etcd server on 127.0.0.1.

use std::time::{Duration, Instant};

use pcxses_core::controller::Journal;
use pcxses_core::controller::{ComputationSpec, DeviceSpec};
use pcxses_core::{Controller, ControllerConfig, MemoryRepository};
use pcxses_etcd::{EtcdJournal, Leadership};
use pcxses_tests::etcd::Server;

const TTL: Duration = Duration::from_secs(2);

#[test]
fn one_ac_leads_and_a_deposed_leader_commits_nothing() {
    let server = Server::start();
    let first = Leadership::campaign(server.etcd(), "/area", "ac-1", TTL);
    assert!(first.holds(Instant::now()));

    // The second stands by while the first leads.
    let etcd = server.etcd();
    let second = std::thread::spawn(move || Leadership::campaign(etcd, "/area", "ac-2", TTL));

    let config = ControllerConfig::lan(
        7,
        vec![DeviceSpec::new("pump", &["flow"])],
        vec![ComputationSpec::new("flow", "flow.wasm")],
    );
    let mut repo = MemoryRepository::default();
    repo.insert("flow.wasm", vec![0u8; 64]);
    let ac = Controller::new(config, repo, pcxses_core::Instant::from_millis(0)).expect("valid");
    let mut journal = EtcdJournal::start(first, "/area", None, &ac).expect("the journal starts");
    journal.record(b"a change");
    assert!(journal.commit(&ac).is_ok());
    assert!(!second.is_finished(), "two ACs lead at once");

    // ac-1's lease is revoked behind its back (as if it expired): ac-2 takes over, and
    // ac-1's next commit fails.
    let etcd = server.etcd();
    let leases = etcd
        .call(|mut c| async move { c.leases().await })
        .expect("leases list");
    let ids: Vec<i64> = leases.leases().iter().map(|l| l.id()).collect();
    for id in ids {
        let _ = etcd.call(|mut c| async move { c.lease_revoke(id).await });
    }
    let second = second.join().unwrap();
    assert!(second.holds(Instant::now()));
    journal.record(b"another change");
    assert!(journal.commit(&ac).is_err(), "a deposed leader committed");

    let stored = EtcdJournal::load(&second, "/area")
        .expect("the journal reads")
        .expect("a journal");
    assert_eq!(stored.changes, vec![b"a change".to_vec()]);
    assert_eq!(stored.snapshot, ac.snapshot());
}

/// etcd's count of its open watchers.
const WATCHERS: &str = "etcd_debugging_mvcc_watcher_total";

/// Waits until `server` reports `watchers` open watchers, for 10 s at most.
fn await_watchers(server: &Server, watchers: f64, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.metric(WATCHERS) != watchers {
        assert!(Instant::now() < deadline, "{why}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_standby_watches_the_leader_key_and_takes_over_once_it_is_gone() {
    // A lease long enough that a standby woken only by its bounded wait would still be
    // waiting when the test gives up.
    const LONG: Duration = Duration::from_secs(60);
    let server = Server::start();
    let first = Leadership::campaign(server.etcd(), "/area", "ac-1", LONG);
    assert_eq!(server.metric(WATCHERS), 0.0);

    let etcd = server.etcd();
    let (led, leading) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = led.send(Leadership::campaign(etcd, "/area", "ac-2", LONG));
    });
    await_watchers(&server, 1.0, "the standby does not watch the leader key");
    assert!(leading.try_recv().is_err(), "two ACs lead at once");

    first.resign().expect("ac-1 resigns");
    let second = leading
        .recv_timeout(LONG / 4)
        .expect("the standby did not take over when the leader key was deleted");
    assert!(second.holds(Instant::now()));
    await_watchers(&server, 0.0, "the standby's watcher was not cancelled");
}
