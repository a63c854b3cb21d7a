//! Holding connections: over TCP, up to N connections that each send a frame header and
//! one byte of its body and then nothing; over QUIC, up to N connections by a certified
//! stranger whose every GOOD_MORNING is refused. Held until a deadline; a connection the
//! target closes is opened again.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pcxses_core::{Device, DeviceConfig, DeviceEvent, Epoch};
use pcxses_transport_quic::{spawn_device, ClientTls, Dial};
use smol::future::FutureExt;
use smol::{Executor, Timer};

use crate::inject::TCP_WAIT;

/// A frame announcing 16 bytes, and the first of them.
pub const STALLED_FRAME: [u8; 2] = [0x10, 0x01];

/// How often held connections are checked for having been closed by the target.
const CHECK: Duration = Duration::from_millis(100);

/// What a hold did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct HoldSummary {
    /// Connections opened (over QUIC: connections started).
    pub opened: u64,
    /// Connections that could not be opened.
    pub failed: u64,
    /// Held connections the target closed.
    pub closed_by_target: u64,
    /// Most connections held at once.
    pub peak: u64,
    /// QUIC: REJECTs the stranger received.
    pub rejected: u64,
    /// QUIC: joins the stranger achieved (anything but zero is a hole).
    pub joined: u64,
}

/// Holds up to `n` TCP connections to `to` until `deadline`.
pub fn hold_tcp(to: SocketAddr, n: usize, deadline: Instant) -> HoldSummary {
    let mut s = HoldSummary::default();
    let mut held: Vec<TcpStream> = Vec::with_capacity(n);
    while Instant::now() < deadline {
        // Open up to n, then check every held one.
        while held.len() < n && Instant::now() < deadline {
            match open(to) {
                Ok(conn) => {
                    s.opened += 1;
                    held.push(conn);
                }
                Err(e) => {
                    s.failed += 1;
                    tracing::debug!(error = %e, "could not open a connection");
                    break;
                }
            }
        }
        s.peak = s.peak.max(held.len() as u64);
        std::thread::sleep(CHECK.min(deadline.saturating_duration_since(Instant::now())));
        let before = held.len();
        held.retain(still_open);
        s.closed_by_target += (before - held.len()) as u64;
    }
    s
}

fn open(to: SocketAddr) -> std::io::Result<TcpStream> {
    let mut conn = TcpStream::connect_timeout(&to, TCP_WAIT)?;
    conn.set_write_timeout(Some(TCP_WAIT))?;
    conn.write_all(&STALLED_FRAME)?;
    conn.set_nonblocking(true)?;
    Ok(conn)
}

/// Whether the target has not closed `conn` (what it sent is read and thrown away).
fn still_open(mut conn: &TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}

/// Holds `n` QUIC connections to `to` with `tls`, each a device agent claiming the name
/// `claim`, until `deadline`.
pub fn hold_quic(
    to: SocketAddr,
    n: usize,
    tls: &ClientTls,
    claim: &str,
    deadline: Instant,
) -> std::io::Result<HoldSummary> {
    let ex = Arc::new(Executor::new());
    let rejected = Arc::new(AtomicU64::new(0));
    let joined = Arc::new(AtomicU64::new(0));
    let epoch = Epoch::new();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    smol::block_on(ex.run(async {
        let mut agents = Vec::with_capacity(n);
        let mut s = HoldSummary::default();
        for i in 0..n as u64 {
            let device = Device::new(DeviceConfig::new(claim, seed ^ i), epoch.now());
            match Dial::new(to, tls) {
                Ok(dial) => {
                    let agent = spawn_device(&ex, device, epoch, dial);
                    s.opened += 1;
                    let (rejected, joined) = (rejected.clone(), joined.clone());
                    let events = agent.events.clone();
                    ex.spawn(async move {
                        while let Ok(e) = events.recv().await {
                            match e {
                                DeviceEvent::Rejected { .. } => {
                                    rejected.fetch_add(1, Ordering::Relaxed)
                                }
                                DeviceEvent::Joined { .. } => {
                                    joined.fetch_add(1, Ordering::Relaxed)
                                }
                                _ => 0,
                            };
                        }
                    })
                    .detach();
                    agents.push(agent);
                }
                Err(e) => {
                    s.failed += 1;
                    tracing::debug!(error = %e, "could not start a connection");
                }
            }
        }
        s.peak = agents.len() as u64;
        Timer::at(deadline).await;
        for a in &agents {
            a.commands.close();
        }
        let stopped = async {
            for a in agents {
                let _ = a.task.await;
            }
        };
        stopped
            .or(async {
                Timer::after(Duration::from_secs(1)).await;
            })
            .await;
        s.rejected = rejected.load(Ordering::Relaxed);
        s.joined = joined.load(Ordering::Relaxed);
        Ok(s)
    }))
}
