//! A leader AC on a three-member etcd cluster on 127.0.0.1 loses one member: its
//! leadership holds, its commits go on, and every committed record is kept. And etcd
//! through a TCP proxy that is cut.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pcxses_core::controller::Journal;
use pcxses_core::controller::{ComputationSpec, DeviceSpec};
use pcxses_core::{Controller, ControllerConfig, MemoryRepository};
use pcxses_etcd::{Etcd, EtcdJournal, Leadership};
use pcxses_tests::etcd::{Cluster, Server};
use pcxses_tests::tcp_proxy::TcpProxy;

const TTL: Duration = Duration::from_secs(2);
/// The request timeout of the ACs' connections.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Records committed before a member is killed, and after.
const BEFORE: usize = 20;
const AFTER: usize = 50;

fn controller() -> Controller {
    let config = ControllerConfig::lan(
        7,
        vec![DeviceSpec::new("pump", &["flow"])],
        vec![ComputationSpec::new("flow", "flow.wasm")],
    );
    let mut repo = MemoryRepository::default();
    repo.insert("flow.wasm", vec![0u8; 64]);
    Controller::new(config, repo, pcxses_core::Instant::from_millis(0)).expect("valid")
}

/// Commits one record at a time through `journal`: [`BEFORE`] of them, then `kill`s, then
/// [`AFTER`] more. Every commit must succeed (an AC whose journal fails stops), and the
/// leadership must hold throughout. Gives the committed records in order.
fn commit_across(journal: &mut EtcdJournal, ac: &Controller, kill: impl FnOnce()) -> Vec<Vec<u8>> {
    let mut kill = Some(kill);
    let mut committed = Vec::new();
    for i in 0..BEFORE + AFTER {
        if i == BEFORE {
            kill.take().expect("one kill")();
        }
        assert!(
            journal.holds(),
            "the leader lost its leadership at record {i}"
        );
        let record = format!("record {i}").into_bytes();
        journal.record(&record);
        journal
            .commit(ac)
            .unwrap_or_else(|_| panic!("commit {i} failed: the AC would stop"));
        committed.push(record);
    }
    assert!(journal.holds(), "the leader lost its leadership");
    committed
}

/// Once the leader has stopped renewing its lease, an AC on a fresh connection to every
/// endpoint takes over and reads exactly `committed` back.
fn assert_kept(endpoints: &[String], committed: &[Vec<u8>], ac: &Controller) {
    let etcd = Arc::new(Etcd::connect(endpoints, TIMEOUT).expect("etcd answers"));
    let reader = Leadership::campaign(etcd, "/area", "ac-2", TTL);
    let stored = EtcdJournal::load(&reader, "/area")
        .expect("the journal reads")
        .expect("a journal");
    assert_eq!(stored.snapshot, ac.snapshot());
    assert_eq!(
        stored.changes.len(),
        committed.len(),
        "records lost or added"
    );
    assert_eq!(stored.changes, committed);
}

/// ac-1 leads the area on `endpoints`, its journal started.
fn lead(endpoints: &[String]) -> (EtcdJournal, Controller) {
    let etcd = Arc::new(Etcd::connect(endpoints, TIMEOUT).expect("etcd answers"));
    let leadership = Leadership::campaign(etcd, "/area", "ac-1", TTL);
    let ac = controller();
    let journal = EtcdJournal::start(leadership, "/area", None, &ac).expect("the journal starts");
    (journal, ac)
}

/// The member that keeps the leader's lease alive: the one running member with a lease
/// keep-alive stream open, as the members report.
fn renewing_member(cluster: &Cluster) -> usize {
    let method = &["grpc_method=\"LeaseKeepAlive\""][..];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open: Vec<usize> = (0..3)
            .filter(|&i| cluster.runs(i))
            .filter(|&i| {
                let started = cluster.metric(i, "grpc_server_started_total", method);
                started > cluster.metric(i, "grpc_server_handled_total", method)
            })
            .collect();
        if let [member] = open[..] {
            return member;
        }
        assert!(
            Instant::now() < deadline,
            "members with a keep-alive stream open: {open:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_leader_keeps_serving_when_the_raft_leader_is_killed() {
    let mut cluster = Cluster::start(3);
    let endpoints = cluster.urls();
    let (mut journal, ac) = lead(&endpoints);

    let mut killed = None;
    let committed = commit_across(&mut journal, &ac, || {
        let leader = cluster.raft_leader();
        cluster.kill(leader);
        killed = Some(leader);
    });
    assert_ne!(Some(cluster.raft_leader()), killed, "no new raft leader");
    drop(journal);
    assert_kept(&endpoints, &committed, &ac);
}

#[test]
fn the_leader_keeps_serving_when_its_first_endpoint_is_killed() {
    let mut cluster = Cluster::start(3);
    // The first endpoint is a follower, so that this differs from killing the raft leader.
    let first = (cluster.raft_leader() + 1) % 3;
    let mut endpoints = cluster.urls();
    endpoints.rotate_left(first);
    let (mut journal, ac) = lead(&endpoints);

    let committed = commit_across(&mut journal, &ac, || cluster.kill(first));
    drop(journal);
    assert_kept(&endpoints, &committed, &ac);
}

#[test]
fn the_leader_keeps_its_lease_when_the_member_renewing_it_is_killed() {
    let mut cluster = Cluster::start(3);
    let endpoints = cluster.urls();
    let (mut journal, ac) = lead(&endpoints);

    let mut killed = None;
    let mut killed_at = Instant::now();
    let mut committed = commit_across(&mut journal, &ac, || {
        let renewing = renewing_member(&cluster);
        cluster.kill(renewing);
        killed = Some(renewing);
        killed_at = Instant::now();
    });
    // The lease is renewed on another member, past the moment it would have expired; the
    // commits go on meanwhile, each with the lease held.
    let lease = journal.lease();
    while lease
        .valid_until()
        .is_some_and(|until| until <= killed_at + TTL)
    {
        assert!(committed.len() < 1_000_000, "the lease was not renewed");
        assert!(journal.holds(), "the leader lost its lease");
        let record = format!("record {}", committed.len()).into_bytes();
        journal.record(&record);
        journal.commit(&ac).expect("a commit while the lease holds");
        committed.push(record);
    }
    assert!(journal.holds(), "the leader lost its lease");
    assert_ne!(Some(renewing_member(&cluster)), killed);
    drop(journal);
    assert_kept(&endpoints, &committed, &ac);
}

#[test]
fn etcd_through_a_cut_proxy_does_not_answer_until_it_is_restored() {
    let server = Server::start();
    let target = server.url.trim_start_matches("http://");
    let proxy = TcpProxy::start(target.parse().expect("an address"));
    let etcd = Etcd::connect(&[proxy.url()], Duration::from_millis(500)).expect("etcd answers");
    let status = || etcd.call(|mut c| async move { c.status().await });
    status().expect("etcd answers through the proxy");
    assert!(proxy.connections() > 0);

    proxy.cut();
    assert_eq!(proxy.connections(), 0);
    assert!(status().is_err(), "etcd answered through a cut proxy");
    assert!(status().is_err(), "etcd answered through a cut proxy");

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Err(e) = status() {
        assert!(
            Instant::now() < deadline,
            "etcd does not answer after restore: {e}"
        );
    }
    assert!(proxy.connections() > 0);

    let address = proxy.address();
    drop(proxy);
    assert!(
        std::net::TcpStream::connect(address).is_err(),
        "a dropped proxy still listens"
    );
    assert!(status().is_err(), "etcd answered through a dropped proxy");
}
