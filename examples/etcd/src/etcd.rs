//! The etcd client on a tokio runtime of its own thread, called from any thread.

use std::future::Future;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

/// An etcd request failed or timed out.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// etcd answered with an error, or could not be reached.
    #[error("etcd: {0}")]
    Client(#[from] etcd_client::Error),
    /// No answer within the request timeout.
    #[error("etcd did not answer within {0:?}")]
    Timeout(Duration),
    /// This AC no longer leads: the write was not made.
    #[error("this AC no longer leads its area")]
    NotLeader,
    /// The area's keys do not hold a journal this AC can read.
    #[error("the journal in etcd is damaged: {0}")]
    Corrupt(String),
    /// The runtime that runs the client could not start.
    #[error("the etcd client's runtime: {0}")]
    Runtime(std::io::Error),
}

/// A connection to an etcd cluster: the client and the runtime it runs on.
pub struct Etcd {
    runtime: tokio::runtime::Runtime,
    client: Client,
    timeout: Duration,
}

impl Etcd {
    /// Connects to the cluster at `endpoints` (`http://host:port`), each request bounded by
    /// `timeout`.
    pub fn connect(endpoints: &[String], timeout: Duration) -> Result<Etcd, EtcdError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("etcd")
            .enable_all()
            .build()
            .map_err(EtcdError::Runtime)?;
        let options = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_timeout(timeout)
            .with_require_leader(true);
        let connect = Client::connect(endpoints.to_vec(), Some(options));
        let client = runtime.block_on(async { tokio::time::timeout(timeout, connect).await });
        let client = client.map_err(|_| EtcdError::Timeout(timeout))??;
        Ok(Etcd {
            runtime,
            client,
            timeout,
        })
    }

    /// Runs `request` with a client of its own and waits for it, for the request timeout
    /// at most. Called from outside the runtime (the AC's loop, its journal).
    ///
    /// A request that fails where another member may answer (one that cannot be reached,
    /// or one without a raft leader) is made again until the timeout, so `request` may
    /// run more than once, even after etcd applied it: it must be safe to repeat. Those
    /// of this crate are (a fenced write puts the same values again, a lease granted twice
    /// leaves one that expires unused). Each attempt is given half the timeout at most.
    pub fn call<T, F>(&self, request: impl Fn(Client) -> F) -> Result<T, EtcdError>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.runtime
            .block_on(retrying(&self.client, self.timeout, request))
    }

    /// Runs `task` with a client of its own and waits for it, for `bound` at most: `None`
    /// if it had not ended by then, and it is dropped. Called from outside the runtime.
    pub(crate) fn wait<T, F>(&self, bound: Duration, task: impl FnOnce(Client) -> F) -> Option<T>
    where
        F: Future<Output = T>,
    {
        let task = task(self.client.clone());
        self.runtime
            .block_on(async move { tokio::time::timeout(bound, task).await.ok() })
    }

    /// Runs `task` on the runtime in the background.
    pub(crate) fn spawn<F>(&self, task: impl FnOnce(Client) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.runtime.spawn(task(self.client.clone()));
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// Whether another attempt may succeed where `error` failed: the member could not be
/// reached or has lost its connection, or it has no raft leader or lost it meanwhile
/// (etcd says `Unavailable` for all of these).
fn transient(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::GRpcStatus(status) => status.code() == tonic::Code::Unavailable,
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    }
}

/// The first pause between two attempts, doubled after each up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(5);
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// Runs `request` with clones of `client` until it succeeds, fails for good, or `timeout`
/// has passed.
///
/// The client spreads requests over the endpoints it was given, and keeps a dead member
/// among them: a request it sends there fails at once, and the next one likely goes to
/// another member. A request that fails while the cluster elects a raft leader succeeds
/// once it has one. Each attempt is given half the timeout at most, so that one lost on
/// its way (a write a member forwarded to a raft leader that has just died, which etcd
/// answers only at its own timeout) leaves time for another.
pub(crate) async fn retrying<T, F>(
    client: &Client,
    timeout: Duration,
    request: impl Fn(Client) -> F,
) -> Result<T, EtcdError>
where
    F: Future<Output = Result<T, etcd_client::Error>>,
{
    let attempts = async {
        let mut pause = FIRST_PAUSE;
        loop {
            match tokio::time::timeout(timeout / 2, request(client.clone())).await {
                Err(_) => tracing::debug!("etcd request: no answer, trying again"),
                Ok(Err(e)) if transient(&e) => {
                    tracing::debug!("etcd request, trying again: {e}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
                Ok(answer) => return answer.map_err(EtcdError::from),
            }
        }
    };
    tokio::time::timeout(timeout, attempts)
        .await
        .unwrap_or(Err(EtcdError::Timeout(timeout)))
}
