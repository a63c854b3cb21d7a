//! Accepting TCP connections without ever spinning: a failing `accept` backs off.

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pcxses_core::LinkId;
use smol::channel::Sender;
use smol::net::{TcpListener, TcpStream};
use smol::Timer;

use crate::limits::ConnectionStats;
use crate::throttle::{Throttle, WARN_PERIOD};

/// What the acceptor hands the driver.
pub(crate) enum Accepted {
    /// A new connection.
    Opened(LinkId, TcpStream),
    /// `accept` failed for want of resources (file descriptors): make room.
    Exhausted,
}

/// Waits after a failed `accept`, at first; doubled at every failure in a row, halved at
/// every success.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(20);
/// The longest wait after a failed `accept`.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Accepts connections and hands them to the driver. A failing `accept` (file
/// descriptors exhausted) backs off and asks the driver to make room; the loop yields
/// after every connection, so it never starves the executor's other tasks (signals
/// among them).
pub(crate) async fn accept(
    listener: TcpListener,
    out: Sender<Accepted>,
    stats: Arc<ConnectionStats>,
) {
    let mut next = 0u64;
    let mut backoff = Duration::ZERO;
    let mut warn = Throttle::new(WARN_PERIOD);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff /= 2;
                next += 1;
                let _ = stream.set_nodelay(true);
                tracing::debug!(%peer, link = next, "connection");
                if out
                    .send(Accepted::Opened(LinkId(next), stream))
                    .await
                    .is_err()
                {
                    return;
                }
                smol::future::yield_now().await;
            }
            Err(e) => {
                stats.accept_errors.fetch_add(1, Relaxed);
                backoff = (backoff * 2).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
                if let Some(suppressed) = warn.allow(Instant::now()) {
                    tracing::warn!(error = %e, suppressed, ?backoff, "accept failed: backing off");
                }
                if is_exhaustion(&e) {
                    let _ = out.try_send(Accepted::Exhausted);
                }
                Timer::after(backoff).await;
            }
        }
    }
}

/// Whether a failed `accept` says the process or the system ran out of something that
/// closing a connection gives back (file descriptors, buffers), rather than that one
/// connection failed.
fn is_exhaustion(e: &io::Error) -> bool {
    !matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}
