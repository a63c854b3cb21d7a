//! The AC's HTTP endpoint, `/status` ([`crate::status`]) and `/metrics`
//! ([`crate::metrics`]), and the client `pcxses-ac status` fetches them with.
//!
//! The server runs on the daemon's executor, on its thread: no thread of its own. It is
//! bounded: at most [`MAX_CONNECTIONS`] connections at once (a further one is closed at
//! once), a request head of at most 8 KiB read within [`HEAD_TIMEOUT`], one request per
//! connection, and each connection closed after [`CONNECTION_TIMEOUT`] whatever it is
//! doing, so that a slow client cannot hold the AC. A request body is never read.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use pcxses_core::Stats;
use pcxses_driver::{ControllerHandle, StatusSource, Throttle, WARN_PERIOD};
use smol::future::FutureExt;
use smol::lock::Semaphore;
use smol::net::{TcpListener, TcpStream};
use smol::{Executor, Task, Timer};
use smol_hyper::rt::{FuturesIo, SmolTimer};

use crate::metrics::{self, Metrics};
use crate::status::StatusDoc;

/// Connections served at once, at most.
pub const MAX_CONNECTIONS: usize = 8;
/// Time a connection has to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
/// Time a connection may stay open, at most: request, answer and all.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// The smallest read buffer hyper takes, and so the largest request head.
const MAX_HEAD: usize = 8192;
/// Headers in a request, at most.
const MAX_HEADERS: usize = 32;

/// A running status endpoint; dropping it stops it (connections being served finish
/// within [`CONNECTION_TIMEOUT`]).
pub struct StatusServer {
    /// The address it serves on.
    pub local_addr: SocketAddr,
    _task: Task<()>,
}

/// What the endpoint answers from.
#[derive(Clone)]
struct Sources {
    status: StatusSource,
    stats: Arc<Mutex<Stats>>,
    metrics: Metrics,
}

/// Serves `/status` and `/metrics` of the AC `ac` on `addr`, in tasks of `ex`; `None`
/// when `addr` is `None`. Logs where it serves.
pub async fn start(
    ex: &Arc<Executor<'static>>,
    addr: Option<SocketAddr>,
    ac: &ControllerHandle,
    metrics: &Metrics,
) -> io::Result<Option<StatusServer>> {
    let Some(addr) = addr else { return Ok(None) };
    let sources = Sources {
        status: ac.status.clone(),
        stats: ac.stats.clone(),
        metrics: metrics.clone(),
    };
    let server = serve(ex, addr, sources).await?;
    let local = server.local_addr;
    tracing::info!(addr = %local, "status at http://{local}/status, metrics at http://{local}/metrics");
    if !local.ip().is_loopback() {
        tracing::warn!(
            addr = %local,
            "the status endpoint is reachable beyond this host: it names every device and its address"
        );
    }
    Ok(Some(server))
}

async fn serve(
    ex: &Arc<Executor<'static>>,
    addr: SocketAddr,
    sources: Sources,
) -> io::Result<StatusServer> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let spawner = ex.clone();
    let task = ex.spawn(async move {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut throttle = Throttle::new(WARN_PERIOD);
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    if let Some(held_back) = throttle.allow(std::time::Instant::now()) {
                        tracing::warn!(error = %e, held_back, "status endpoint: accept failed");
                    }
                    // Out of file descriptors, most likely: let connections end.
                    Timer::after(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some(slot) = slots.try_acquire_arc() else {
                if let Some(held_back) = throttle.allow(std::time::Instant::now()) {
                    tracing::warn!(%peer, held_back, "status endpoint: too many connections, closing one");
                }
                continue;
            };
            let sources = sources.clone();
            spawner
                .spawn(async move {
                    let _slot = slot;
                    connection(stream, sources)
                        .or(async {
                            Timer::after(CONNECTION_TIMEOUT).await;
                        })
                        .await;
                })
                .detach();
        }
    });
    Ok(StatusServer {
        local_addr,
        _task: task,
    })
}

/// Serves one request on `stream`.
async fn connection(stream: TcpStream, sources: Sources) {
    let service = hyper::service::service_fn(move |request| respond(request, sources.clone()));
    let served = hyper::server::conn::http1::Builder::new()
        .timer(SmolTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .max_headers(MAX_HEADERS)
        .keep_alive(false)
        .serve_connection(FuturesIo::new(stream), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "status endpoint: connection ended");
    }
}

fn answer(code: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    (response.headers_mut()).insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

const TEXT: &str = "text/plain; charset=utf-8";

async fn respond(
    request: Request<Incoming>,
    sources: Sources,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = answer(StatusCode::METHOD_NOT_ALLOWED, TEXT, "GET only\n".into());
        (response.headers_mut()).insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(response);
    }
    let stopped = || answer(StatusCode::SERVICE_UNAVAILABLE, TEXT, "stopping\n".into());
    Ok(match request.uri().path() {
        "/status" => match sources.status.status().await {
            Some(status) => {
                let doc = StatusDoc::new(&status);
                let json = serde_json::to_string(&doc).unwrap_or_default();
                answer(StatusCode::OK, "application/json", json)
            }
            None => stopped(),
        },
        "/metrics" => {
            let census = sources.status.census().await;
            let stats = sources.stats.lock().map(|s| *s).unwrap_or_default();
            let text = sources.metrics.render(&stats, census.as_ref());
            answer(StatusCode::OK, metrics::CONTENT_TYPE, text)
        }
        "/" => answer(StatusCode::OK, TEXT, "pcxses-ac: /status /metrics\n".into()),
        _ => answer(StatusCode::NOT_FOUND, TEXT, "not found\n".into()),
    })
}

/// Why `pcxses-ac status` could not fetch a page.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request failed, or the answer was not 200.
    #[error("http://{0}{1}: {2}")]
    Http(SocketAddr, String, Box<ureq::Error>),
    /// `/status` was not a status document.
    #[error("http://{0}/status: not a status document: {1}")]
    Json(SocketAddr, serde_json::Error),
}

/// How long a fetch may take, at most.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The body of `http://addr{path}`, within [`FETCH_TIMEOUT`], without a proxy.
pub fn fetch(addr: SocketAddr, path: &str) -> Result<String, FetchError> {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(FETCH_TIMEOUT))
        .proxy(None)
        .build()
        .new_agent();
    let err = |e| FetchError::Http(addr, path.into(), Box::new(e));
    let mut response = agent
        .get(format!("http://{addr}{path}"))
        .call()
        .map_err(err)?;
    // A status of 100,000 devices is tens of megabytes.
    let body = response.body_mut().with_config().limit(1 << 30);
    body.read_to_string().map_err(err)
}

/// The status document of the AC whose endpoint is at `addr`.
pub fn fetch_status(addr: SocketAddr) -> Result<StatusDoc, FetchError> {
    let text = fetch(addr, "/status")?;
    serde_json::from_str(&text).map_err(|e| FetchError::Json(addr, e))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use pcxses_core::controller::{ComputationSpec, ControllerConfig, DeviceSpec};
    use pcxses_core::{Controller, Epoch, MemoryRepository};
    use pcxses_program::transport::{Transport, TransportLimits};

    use super::*;

    /// Runs `test` against the endpoint of an AC of one device that never joins, on UDP,
    /// with `test` on a thread of its own: the client blocks.
    fn with_endpoint(test: impl FnOnce(SocketAddr) + Send + 'static) {
        let ex = Arc::new(Executor::new());
        smol::block_on(ex.run(async {
            let epoch = Epoch::new();
            let config = ControllerConfig::new(
                1,
                vec![DeviceSpec::new("dev0", &["comp0"])],
                vec![ComputationSpec::new("comp0", "c0")],
            );
            let controller =
                Controller::new(config, MemoryRepository::default(), epoch.now()).unwrap();
            let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let ac = (Transport::Udp)
                .serve(
                    &ex,
                    controller,
                    epoch,
                    loopback,
                    None,
                    TransportLimits::default(),
                )
                .unwrap();
            let metrics = Metrics::default();
            let server = start(&ex, Some(loopback), &ac, &metrics)
                .await
                .unwrap()
                .unwrap();
            let addr = server.local_addr;
            smol::unblock(move || test(addr)).await;
            ac.commands.close();
            ac.task.await.unwrap();
        }));
    }

    #[test]
    fn status_and_metrics_are_served_and_other_requests_refused() {
        with_endpoint(|addr| {
            let doc = fetch_status(addr).unwrap();
            assert_eq!(doc.devices[0].name, "dev0");
            assert_eq!(doc.devices[0].liveness, "unseen");
            assert_eq!(doc.computations[0].placement, "unplaced");
            let text = fetch(addr, "/metrics").unwrap();
            assert!(
                text.contains("pcxses_ac_devices{state=\"unseen\"} 1\n"),
                "{text}"
            );
            let missing = fetch(addr, "/nothing").unwrap_err().to_string();
            assert!(missing.contains("404"), "{missing}");
            let agent = ureq::Agent::config_builder()
                .proxy(None)
                .build()
                .new_agent();
            let post = agent
                .post(format!("http://{addr}/status"))
                .send("x")
                .unwrap_err();
            assert!(matches!(post, ureq::Error::StatusCode(405)), "{post}");
        });
    }

    #[test]
    fn connections_beyond_the_bound_are_closed_and_idle_ones_time_out() {
        with_endpoint(|addr| {
            let idle: Vec<std::net::TcpStream> = (0..MAX_CONNECTIONS)
                .map(|_| std::net::TcpStream::connect(addr).unwrap())
                .collect();
            // Let the server accept them all before the one too many.
            std::thread::sleep(Duration::from_millis(200));
            let mut extra = std::net::TcpStream::connect(addr).unwrap();
            extra
                .set_read_timeout(Some(Duration::from_secs(1)))
                .unwrap();
            let mut buf = [0u8; 16];
            assert_eq!(extra.read(&mut buf).unwrap(), 0, "closed at once");
            // The idle ones are closed once their head timeout passes.
            for mut s in idle {
                s.set_read_timeout(Some(HEAD_TIMEOUT * 3)).unwrap();
                let started = std::time::Instant::now();
                let _ = s.read(&mut buf);
                assert!(started.elapsed() < HEAD_TIMEOUT * 3);
            }
            assert_eq!(fetch_status(addr).unwrap().devices.len(), 1);
        });
    }
}
