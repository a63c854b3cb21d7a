//! Accepting TCP connections without ever spinning: a failing `accept` backs off.

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use pcxses_driver::{Arrivals, Frames, Opened, Pipe, Throttle, WARN_PERIOD};
use smol::net::TcpListener;
use smol::Timer;

/// Waits after a failed `accept`, at first; doubled at every failure in a row, halved at
/// every success.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(20);
/// The longest wait after a failed `accept`.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Accepts connections and hands them to the driver. A failing `accept` (file
/// descriptors exhausted) backs off and asks the driver to make room; the loop yields
/// after every connection, so it never starves the executor's other tasks (signals
/// among them).
pub(crate) async fn accept(listener: TcpListener, arrivals: Arrivals<Pipe>) {
    let mut backoff = Duration::ZERO;
    let mut warn = Throttle::new(WARN_PERIOD);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff /= 2;
                let _ = stream.set_nodelay(true);
                let open = |frames: Frames| {
                    tracing::debug!(%peer, link = ?frames.link(), "connection");
                    Opened::stream(stream, frames)
                };
                if !arrivals.open(Some(peer), open).await {
                    return;
                }
                smol::future::yield_now().await;
            }
            Err(e) => {
                arrivals.stats().accept_errors.fetch_add(1, Relaxed);
                backoff = (backoff * 2).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
                if let Some(suppressed) = warn.allow(Instant::now()) {
                    tracing::warn!(error = %e, suppressed, ?backoff, "accept failed: backing off");
                }
                if is_exhaustion(&e) {
                    arrivals.exhausted();
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
