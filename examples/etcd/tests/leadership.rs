//! Leadership and the fenced journal against a real etcd server on 127.0.0.1.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pcxses_core::controller::Journal;
use pcxses_core::controller::{ComputationSpec, DeviceSpec};
use pcxses_core::{Controller, ControllerConfig, MemoryRepository};
use pcxses_etcd::{Etcd, EtcdJournal, Leadership};

/// A single-member etcd with a temporary data directory, killed when dropped.
struct Server {
    child: Child,
    url: String,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Server {
    fn start() -> Server {
        let dir = std::env::temp_dir().join(format!(
            "pcxses-etcd-{}-{}",
            std::process::id(),
            free_port()
        ));
        let (client, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .args(["--name", "n1", "--data-dir"])
            .arg(&dir)
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("n1={peer_url}")])
            .args([
                "--initial-cluster-state",
                "new",
                "--logger",
                "zap",
                "--log-level",
                "error",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd starts (scripts/test installs etcd-server)");
        let server = Server {
            child,
            url,
            _dir: TempDir(dir),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let ready = || {
            let etcd = Etcd::connect(
                std::slice::from_ref(&server.url),
                Duration::from_millis(500),
            )?;
            etcd.call(|mut c| async move { c.status().await })
        };
        while ready().is_err() {
            assert!(Instant::now() < deadline, "etcd did not start within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn etcd(&self) -> Arc<Etcd> {
        Arc::new(
            Etcd::connect(std::slice::from_ref(&self.url), Duration::from_secs(2))
                .expect("etcd answers"),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const TTL: Duration = Duration::from_secs(2);

#[test]
fn one_ac_leads_and_a_deposed_leader_commits_nothing() {
    let server = Server::start();
    let first = Leadership::campaign(server.etcd(), "/area", "ac-1", TTL).expect("ac-1 leads");
    assert!(first.holds(Instant::now()));

    // The second stands by while the first leads.
    let etcd = server.etcd();
    let second = std::thread::spawn(move || Leadership::campaign(etcd, "/area", "ac-2", TTL));
    std::thread::sleep(TTL * 2);
    assert!(!second.is_finished(), "two ACs lead at once");

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
    let second = second.join().unwrap().expect("ac-2 leads");
    assert!(second.holds(Instant::now()));
    journal.record(b"another change");
    assert!(journal.commit(&ac).is_err(), "a deposed leader committed");

    let stored = EtcdJournal::load(&second, "/area")
        .expect("the journal reads")
        .expect("a journal");
    assert_eq!(stored.changes, vec![b"a change".to_vec()]);
    assert_eq!(stored.snapshot, ac.snapshot());
}
