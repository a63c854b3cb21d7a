//! Accepting QUIC connections: a bounded number of handshakes in flight, each within a
//! deadline.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use pcxses_core::LinkId;
use pcxses_transport_tcp::throttle::{Throttle, WARN_PERIOD};
use pcxses_transport_tcp::{ConnectionLimits, ConnectionStats};
use smol::channel::Sender;
use smol::future::FutureExt;
use smol::{Executor, Timer};

use crate::stream::{read_frames, Inbound};
use crate::tls;

/// Accepts connection attempts: at most `limits.max_handshakes` in flight (further ones are
/// refused), each completing its handshake and opening its control stream within the
/// first-bottle deadline, in a task of its own.
pub(crate) struct Acceptor {
    pub(crate) ex: Arc<Executor<'static>>,
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) inbound: Sender<Inbound>,
    pub(crate) limits: ConnectionLimits,
    pub(crate) stats: Arc<ConnectionStats>,
}

/// One handshake in flight, until dropped.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl Acceptor {
    pub(crate) async fn run(self) {
        let mut next = 0u64;
        let in_flight = Arc::new(AtomicUsize::new(0));
        let mut warn = Throttle::new(WARN_PERIOD);
        while let Some(incoming) = self.endpoint.accept().await {
            if in_flight.load(Relaxed) >= self.limits.max_handshakes {
                self.stats.handshakes_refused.fetch_add(1, Relaxed);
                if let Some(suppressed) = warn.allow(Instant::now()) {
                    tracing::warn!(
                        peer = %incoming.remote_address(),
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
            next += 1;
            let link = LinkId(next);
            let handshake = handshake(incoming, link, self.inbound.clone(), guard);
            let deadline = self.limits.first_bottle;
            self.ex
                .spawn(async move {
                    let Some(recv) = handshake
                        .or(async {
                            Timer::after(deadline).await;
                            tracing::debug!(?link, "handshake too slow");
                            None
                        })
                        .await
                    else {
                        return;
                    };
                    let inbound = recv.1;
                    read_frames(recv.0, link, inbound.clone()).await;
                    let _ = inbound.send(Inbound::Closed(link)).await;
                })
                .detach();
        }
    }
}

/// Completes a handshake and the opening of the control stream, and hands the connection
/// to the driver; returns the stream to read and the driver's queue.
async fn handshake(
    incoming: quinn::Incoming,
    link: LinkId,
    inbound: Sender<Inbound>,
    in_flight: InFlight,
) -> Option<(quinn::RecvStream, Sender<Inbound>)> {
    let connection = match incoming.await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(?link, error = %e, "handshake failed");
            return None;
        }
    };
    let Some(identity) = tls::identity(&connection) else {
        connection.close(1u32.into(), b"the certificate names no device");
        return None;
    };
    let identity = Some(identity);
    let Ok((control, recv)) = connection.accept_bi().await else {
        return None;
    };
    tracing::debug!(?link, ?identity, peer = %connection.remote_address(), "connection");
    let opened = Inbound::Opened {
        link,
        identity,
        connection: connection.clone(),
        control,
    };
    if inbound.send(opened).await.is_err() {
        return None;
    }
    drop(in_flight);
    Some((recv, inbound))
}
