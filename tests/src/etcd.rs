//! Real etcd servers for the tests: a cluster of members on 127.0.0.1, each with a
//! temporary data directory, every one killed when dropped (`scripts/test` installs
//! Debian's `etcd-server`).

use std::net::SocketAddr;

use crate::ports::free_addrs;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pcxses_etcd::Etcd;

/// How long a cluster may take to start, or to elect a raft leader.
const START: Duration = Duration::from_secs(20);
/// The request timeout of the connections a [`Cluster`] gives.
const TIMEOUT: Duration = Duration::from_secs(2);

/// A single-member etcd with a temporary data directory, killed when dropped.
pub struct Server {
    /// Its client URL.
    pub url: String,
    cluster: Cluster,
}

impl Server {
    /// Starts a member and waits until it answers.
    pub fn start() -> Server {
        let cluster = Cluster::start(1);
        Server {
            url: cluster.urls()[0].clone(),
            cluster,
        }
    }

    /// A connection to it.
    pub fn etcd(&self) -> Arc<Etcd> {
        self.cluster.etcd()
    }

    /// The value of the gauge or counter `name` the member reports at `/metrics`, e.g.
    /// `etcd_debugging_mvcc_watcher_total`: see [`Cluster::metric`].
    pub fn metric(&self, name: &str) -> f64 {
        self.cluster.metric(0, name, &[])
    }
}

/// An etcd cluster of members on 127.0.0.1, every member killed when dropped.
pub struct Cluster {
    members: Vec<Member>,
}

/// One member: its process (`None` once killed), its client URL, a connection to it
/// alone, and its data directory. Killed when dropped.
struct Member {
    child: Option<Child>,
    url: String,
    etcd: Etcd,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `n` distinct free ports on 127.0.0.1.
fn free_ports(n: usize) -> Vec<u16> {
    free_addrs(n).iter().map(SocketAddr::port).collect()
}

impl Cluster {
    /// Starts `n` members as one new cluster, and waits until every member answers and
    /// the cluster has elected a raft leader. Elections are quick: heartbeats every 50 ms,
    /// an election after 500 ms without one.
    pub fn start(n: usize) -> Cluster {
        assert!(n > 0, "a cluster has members");
        let ports = free_ports(2 * n);
        let (clients, peers) = ports.split_at(n);
        let peer_urls: Vec<String> = peers
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        let initial_cluster: Vec<String> = peer_urls
            .iter()
            .enumerate()
            .map(|(i, url)| format!("n{}={url}", i + 1))
            .collect();
        let initial_cluster = initial_cluster.join(",");
        let token = format!("pcxses-{}-{}", std::process::id(), peers[0]);
        let mut members = Vec::with_capacity(n);
        for (i, (client, peer_url)) in clients.iter().zip(&peer_urls).enumerate() {
            let name = format!("n{}", i + 1);
            let dir = std::env::temp_dir().join(format!("pcxses-etcd-{token}-{name}"));
            let url = format!("http://127.0.0.1:{client}");
            // The client connects lazily: it is made before the member, which is then
            // never left running without a `Member` to kill it.
            let etcd =
                Etcd::connect(std::slice::from_ref(&url), START).expect("a connection to a member");
            let child = Command::new("etcd")
                .args(["--name", &name, "--data-dir"])
                .arg(&dir)
                .args(["--listen-client-urls", &url])
                .args(["--advertise-client-urls", &url])
                .args(["--listen-peer-urls", peer_url])
                .args(["--initial-advertise-peer-urls", peer_url])
                .args(["--initial-cluster", &initial_cluster])
                .args(["--initial-cluster-token", &token])
                .args(["--initial-cluster-state", "new"])
                .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
                .args(["--logger", "zap", "--log-level", "error"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("etcd starts (scripts/test installs etcd-server)");
            members.push(Member {
                child: Some(child),
                url,
                etcd,
                _dir: TempDir(dir),
            });
        }
        let cluster = Cluster { members };
        for member in &cluster.members {
            assert!(
                member.status().is_some(),
                "etcd member {} did not answer within {START:?}",
                member.url
            );
        }
        cluster.raft_leader();
        cluster
    }

    /// The members' client URLs, in the order they were started.
    pub fn urls(&self) -> Vec<String> {
        self.members.iter().map(|m| m.url.clone()).collect()
    }

    /// A connection to every member, in the order they were started.
    pub fn etcd(&self) -> Arc<Etcd> {
        Arc::new(Etcd::connect(&self.urls(), TIMEOUT).expect("etcd answers"))
    }

    /// The index of the member the cluster elected raft leader: waits until every member
    /// still running answers and they all name the same one of them.
    pub fn raft_leader(&self) -> usize {
        let deadline = Instant::now() + START;
        loop {
            let running = self
                .members
                .iter()
                .enumerate()
                .filter(|(_, m)| m.child.is_some());
            let statuses: Option<Vec<(usize, u64, u64)>> = running
                .map(|(i, m)| m.status().map(|(id, leader)| (i, id, leader)))
                .collect();
            if let Some(statuses) = statuses {
                let leader = statuses.first().map(|&(_, _, leader)| leader);
                let agreed = statuses.iter().all(|&(_, _, l)| Some(l) == leader);
                let elected = statuses.iter().find(|&&(_, id, _)| Some(id) == leader);
                if let (true, Some(&(index, _, _))) = (agreed, elected) {
                    return index;
                }
            }
            // Members that disagree have just elected a leader: asking again settles it.
            assert!(
                Instant::now() < deadline,
                "the etcd members did not agree on a raft leader within {START:?}"
            );
        }
    }

    /// The sum of the values of the series of gauge or counter `name` that member `index`
    /// reports at `/metrics` with every one of `labels` (each `label="value"`), e.g.
    /// `grpc_server_started_total` with `grpc_method="LeaseKeepAlive"`.
    pub fn metric(&self, index: usize, name: &str, labels: &[&str]) -> f64 {
        let address = self.members[index].url.trim_start_matches("http://");
        let address = address.parse().expect("a member's address");
        let answer = pcxses_ac::http::fetch(address, "/metrics").expect("etcd's metrics");
        let values: Vec<f64> = answer
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (series_name, series_labels) = match series.split_once('{') {
                    Some((n, l)) => (n, l.trim_end_matches('}')),
                    None => (series, ""),
                };
                let wanted = series_name == name
                    && labels
                        .iter()
                        .all(|l| series_labels.split(',').any(|s| s == *l));
                wanted.then(|| value.parse().ok()).flatten()
            })
            .collect();
        assert!(
            !values.is_empty(),
            "etcd reports no metric {name} {labels:?}"
        );
        values.iter().sum()
    }

    /// Whether member `index` runs: it has not been killed.
    pub fn runs(&self, index: usize) -> bool {
        self.members[index].child.is_some()
    }

    /// Kills member `index` (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self, index: usize) {
        let member = &mut self.members[index];
        let mut child = member.child.take().expect("the member is running");
        child.kill().expect("the member is killed");
        child.wait().expect("the killed member exits");
    }
}

impl Member {
    /// The member's own id and the raft leader's id, once it answers and knows a leader
    /// (within [`START`]).
    fn status(&self) -> Option<(u64, u64)> {
        // A read that needs a raft leader: the member refuses it as unavailable until it
        // knows one, and the call asks again meanwhile.
        self.etcd
            .call(|mut c| async move { c.get("/", None).await })
            .ok()?;
        let status = self
            .etcd
            .call(|mut c| async move { c.status().await })
            .ok()?;
        let id = status.header()?.member_id();
        (status.leader() != 0).then_some((id, status.leader()))
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
