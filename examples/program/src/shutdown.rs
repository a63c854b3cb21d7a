//! SIGINT and SIGTERM as a stream, without a thread of their own.

use std::future::Future;
use std::io;

use async_signal::{Signal, Signals};
use smol::future::FutureExt;
use smol::stream::StreamExt;

/// The termination signals of a program.
pub struct Shutdown(Signals);

impl Shutdown {
    /// Starts catching SIGINT and SIGTERM.
    pub fn catch() -> io::Result<Shutdown> {
        Ok(Shutdown(Signals::new([Signal::Int, Signal::Term])?))
    }

    /// Waits for the next one.
    pub async fn next(&mut self) {
        let _ = self.0.next().await;
    }

    /// Waits for `work`, or for the next signal when it comes first: then `stopped`. A
    /// program's loop waits so for whatever wakes it, signals included; `work` is polled
    /// first.
    pub async fn race<T>(&mut self, work: impl Future<Output = T>, stopped: T) -> T {
        work.or(async {
            self.next().await;
            stopped
        })
        .await
    }
}
