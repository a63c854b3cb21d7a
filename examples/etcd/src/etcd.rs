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
    pub fn call<T, F>(&self, request: impl FnOnce(Client) -> F) -> Result<T, EtcdError>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        let timeout = self.timeout;
        let request = request(self.client.clone());
        self.runtime.block_on(async move {
            match tokio::time::timeout(timeout, request).await {
                Ok(answer) => answer.map_err(EtcdError::from),
                Err(_) => Err(EtcdError::Timeout(timeout)),
            }
        })
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
