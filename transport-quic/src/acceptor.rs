//! Accepting QUIC connections: a bounded number of handshakes in flight, each within a
//! deadline.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use pcxses_driver::{Arrivals, RefusalReason, Throttle, WARN_PERIOD};
use smol::future::FutureExt;
use smol::{Executor, Timer};

use crate::streams::{accepted, Streams};
use crate::tls;

/// One handshake in flight, until dropped.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Closes the endpoint when the acceptor stops (the AC stops).
struct Closing(quinn::Endpoint);

impl Drop for Closing {
    fn drop(&mut self) {
        self.0.close(0u32.into(), b"AC stopping");
    }
}

/// Accepts connection attempts on `endpoint`: at most
/// [`ConnectionLimits::max_handshakes`](pcxses_driver::ConnectionLimits::max_handshakes)
/// in flight (further ones are refused), each completing its handshake and opening its
/// control stream within the first-bottle deadline, in a task of its own.
pub(crate) async fn accept(
    ex: Arc<Executor<'static>>,
    endpoint: quinn::Endpoint,
    arrivals: Arrivals<Streams>,
) {
    let endpoint = Closing(endpoint);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut warn = Throttle::new(WARN_PERIOD);
    while let Some(incoming) = endpoint.0.accept().await {
        let peer = incoming.remote_address();
        if in_flight.load(Relaxed) >= arrivals.limits().max_handshakes {
            arrivals.stats().handshakes_refused.fetch_add(1, Relaxed);
            if let Some(suppressed) = warn.allow(Instant::now()) {
                tracing::warn!(
                    %peer,
                    suppressed,
                    "too many handshakes in flight: refused a connection"
                );
            }
            incoming.refuse();
            smol::future::yield_now().await;
            continue;
        }
        in_flight.fetch_add(1, Relaxed);
        let guard = InFlight(in_flight.clone());
        let deadline = arrivals.limits().first_bottle;
        let handshake = handshake(incoming, peer, arrivals.clone(), guard);
        ex.spawn(handshake.or(async move {
            Timer::after(deadline).await;
            tracing::debug!(%peer, "handshake too slow");
        }))
        .detach();
    }
}

/// Completes a handshake and the opening of the control stream, and hands the connection
/// to the driver.
async fn handshake(
    incoming: quinn::Incoming,
    peer: SocketAddr,
    arrivals: Arrivals<Streams>,
    in_flight: InFlight,
) {
    let connection = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            match tls::failure(&e) {
                Some(alert) => arrivals.refused(peer, RefusalReason::Tls(alert)),
                None => tracing::debug!(%peer, error = %e, "handshake failed"),
            }
            return;
        }
    };
    let Some(identity) = tls::identity(&connection) else {
        const NO_NAME: &str = "the certificate names no device";
        connection.close(1u32.into(), NO_NAME.as_bytes());
        arrivals.refused(peer, RefusalReason::Tls(NO_NAME.into()));
        return;
    };
    let Ok(control) = connection.accept_bi().await else {
        return;
    };
    arrivals
        .open(Some(peer), |frames| {
            tracing::debug!(link = ?frames.link(), ?identity, %peer, "connection");
            accepted(connection, identity, control, frames)
        })
        .await;
    drop(in_flight);
}
