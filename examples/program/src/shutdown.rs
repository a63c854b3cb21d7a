//! SIGINT and SIGTERM as a stream, without a thread of their own.

use std::io;

use async_signal::{Signal, Signals};
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
}
