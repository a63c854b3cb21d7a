//! A real etcd server for the tests: one member on 127.0.0.1 with a temporary data
//! directory, killed when dropped (`scripts/test` installs Debian's `etcd-server`).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pcxses_etcd::Etcd;

/// A single-member etcd with a temporary data directory, killed when dropped.
pub struct Server {
    child: Child,
    /// Its client URL.
    pub url: String,
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
    /// Starts a member and waits until it answers.
    pub fn start() -> Server {
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

    /// A connection to it.
    pub fn etcd(&self) -> Arc<Etcd> {
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
