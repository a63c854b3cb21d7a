//! The Area Controller daemon: it serves the devices of its configuration on one transport
//! and prints every protocol event (and, periodically, its counters, RSS and threads) as
//! a JSON line. SIGINT or SIGTERM stops it cleanly.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use pcxses_core::{Controller, ControllerEvent, Epoch, Instant, Stats};
use pcxses_driver::{ConnectionStats, Refusal};
use smol::future::FutureExt;
use smol::{Executor, Timer};

use crate::check;
use crate::config::{AcConfig, Durability, EtcdSection};
use crate::http;
use crate::journal::FileJournal;
use crate::metrics::Metrics;
use crate::standby;
use crate::standby::unix_ms;
use pcxses_core::controller::ComputationId;
use pcxses_etcd::{EtcdJournal, Lease};
use pcxses_program::events::{at_ms, controller_event, EventFormat, Names};
use pcxses_program::procfs;
use pcxses_program::shutdown::Shutdown;
use pcxses_program::transport::{AcTlsArgs, Transport};

/// The AC daemon's command line.
#[derive(clap::Args, Debug)]
pub struct DaemonArgs {
    /// The configuration file (settings and device registry).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The transport to serve on.
    #[arg(long, value_enum, default_value = "udp")]
    pub transport: Transport,
    /// Print protocol events on stdout in this format.
    #[arg(long, value_enum)]
    pub events: Option<EventFormat>,
    /// Listen here instead of the configured address.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// With `--events`, print a `stats` event this often: counters, RSS and threads.
    #[arg(long)]
    pub stats_ms: Option<u64>,
    /// Serve `/status` and `/metrics` over HTTP here, instead of the configured `[status]`
    /// address (off when neither is given).
    #[arg(long, value_name = "ADDR")]
    pub status_listen: Option<SocketAddr>,
    /// TLS, for `--transport quic`.
    #[command(flatten)]
    pub tls: AcTlsArgs,
}

/// How serving ended.
enum Ended {
    /// SIGINT or SIGTERM.
    Stopped,
    /// The journal in etcd no longer holds: another AC leads, or may.
    Deposed,
}

/// Serves until SIGINT or SIGTERM. With `[etcd]` it stands by until it leads, and stands by
/// again whenever the journal in etcd no longer holds.
pub fn run(args: DaemonArgs) -> Result<(), String> {
    let path = args.config.clone().ok_or("--config is required")?;
    let epoch = Epoch::new();
    let mut shutdown = Shutdown::catch().map_err(|e| e.to_string())?;
    loop {
        // Everything `pcxses-ac check` checks, every problem listed, before anything is
        // bound.
        let checked = check::check(&path, epoch.now()).map_err(|e| e.to_string())?;
        let (config, mut controller) = (checked.config, checked.controller);
        let metrics = Metrics::default();
        let mut lease = None;
        if let Some((path, durability)) = &config.journal {
            let sync = *durability == Durability::Sync;
            let scanned = checked.journal;
            let mut journal =
                FileJournal::resume(path, sync, scanned).map_err(|e| e.to_string())?;
            // The journal starts from this controller, before anything can be acknowledged.
            journal
                .start(&controller)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if scanned.is_some() && args.events.is_some() {
                print_restored(&controller, &epoch);
            }
            controller = controller.with_journal(Box::new(metrics.timed(journal)));
        }
        if let Some(section) = &config.etcd {
            let Some(led) = stand_by(section, controller, epoch, args.events, &mut shutdown) else {
                return Ok(());
            };
            let (restored, journal, had) = led?;
            if had && args.events.is_some() {
                print_restored(&restored, &epoch);
            }
            lease = Some(journal.lease());
            controller = restored.with_journal(Box::new(metrics.timed(journal)));
        }
        let serving = Serving {
            controller,
            names: &checked.names,
            metrics: &metrics,
            lease,
        };
        match serve(&args, &config, serving, epoch, &mut shutdown)? {
            Ended::Stopped => return Ok(()),
            Ended::Deposed => continue,
        }
    }
}

/// Stands by until this AC leads its area (see [`standby::lead`]); `None` when a signal
/// stops it first.
fn stand_by(
    section: &EtcdSection,
    controller: Controller,
    epoch: Epoch,
    events: Option<EventFormat>,
    shutdown: &mut Shutdown,
) -> Option<Result<(Controller, EtcdJournal, bool), String>> {
    let (led, leading) = smol::channel::bounded(1);
    let section = section.clone();
    // Campaigning blocks; a signal meanwhile ends the process without waiting for it.
    std::thread::spawn(move || {
        let _ = led.send_blocking(standby::lead(&section, controller, &epoch, events));
    });
    smol::block_on(shutdown.race(async { leading.recv().await.ok() }, None))
}

/// What an AC serves with.
struct Serving<'a> {
    controller: Controller,
    names: &'a Names,
    metrics: &'a Metrics,
    /// With `[etcd]`: the lease this AC leads by.
    lease: Option<Lease>,
}

/// Serves until a signal stops it or its journal in etcd no longer holds.
fn serve(
    args: &DaemonArgs,
    config: &AcConfig,
    serving: Serving<'_>,
    epoch: Epoch,
    shutdown: &mut Shutdown,
) -> Result<Ended, String> {
    let Serving {
        mut controller,
        names,
        metrics,
        lease,
    } = serving;
    // The challenges of keyed joins: a fresh secret at every start, never stored.
    let mut entropy = [0u8; 32];
    getrandom::fill(&mut entropy).map_err(|e| format!("no randomness from the system: {e}"))?;
    controller = controller.with_entropy(entropy);
    let listen = args.listen.unwrap_or(config.listen);
    if open_to_strangers(listen, args.transport, config.controller.require_auth) {
        tracing::warn!(
            %listen,
            "LISTENING BEYOND THIS HOST WITHOUT require_auth: anyone who can reach {listen} \
             and knows a device's name can join as that device, overwrite its state and \
             receive its computations; give every device a pre-shared key and set \
             require_auth = true, or use --transport quic"
        );
        if let Some(EventFormat::Jsonl) = args.events {
            let line = serde_json::json!({"event": "unauthenticated_listen", "addr": listen.to_string(), "at_ms": at_ms(epoch.now())});
            println!("{line}");
        }
    }
    let tls = match args.transport {
        Transport::Quic => Some(args.tls.load()?),
        _ => None,
    };
    // Everything runs on this thread: the protocol, the sockets and the event output.
    let ex = Arc::new(Executor::new());
    let ended = smol::block_on(ex.run(async {
        let ac = args
            .transport
            .serve(&ex, controller, epoch, listen, tls.as_ref(), config.limits)
            .map_err(|e| format!("{listen}: {e}"))?;
        tracing::info!(addr = %ac.local_addr, transport = ?args.transport, "serving");
        let status_listen = args.status_listen.or(config.status);
        let _status = http::start(&ex, status_listen, &ac, metrics)
            .await
            .map_err(|e| format!("status endpoint: {e}"))?;
        let mut out = std::io::stdout().lock();
        if args.events.is_some() {
            let line = serde_json::json!({"event": "listening", "addr": ac.local_addr.to_string(), "at_ms": at_ms(epoch.now())});
            let _ = writeln!(out, "{line}").and_then(|()| out.flush());
        }
        let period = args.stats_ms.map(std::time::Duration::from_millis);
        let mut next_stats = period.map(|p| std::time::Instant::now() + p);
        let ended = loop {
            enum Wake {
                Event(ControllerEvent),
                Refused(Refusal),
                Stats,
                LeaseEnds,
                Stop,
            }
            let event = async { ac.events.recv().await.map_or(Wake::Stop, Wake::Event) };
            let refused = async {
                match ac.refusals.recv().await {
                    Ok(r) => Wake::Refused(r),
                    Err(_) => std::future::pending().await,
                }
            };
            let stats = async {
                match next_stats {
                    Some(at) => Timer::at(at).await,
                    None => Timer::never().await,
                };
                Wake::Stats
            };
            // A leader that cannot renew its lease says so when it runs out, whether or not
            // anything was to be acknowledged meanwhile.
            let lease_ends = async {
                match lease.as_ref().map(Lease::valid_until) {
                    Some(Some(until)) => Timer::at(until).await,
                    Some(None) => Timer::after(std::time::Duration::ZERO).await,
                    None => Timer::never().await,
                };
                Wake::LeaseEnds
            };
            let wake = shutdown
                .race(event.or(refused).or(stats).or(lease_ends), Wake::Stop)
                .await;
            match wake {
                Wake::Event(event) => {
                    tracing::debug!(?event);
                    metrics.observe(&event);
                    if args.events.is_some() {
                        let _ = writeln!(out, "{}", controller_event(&event, names))
                            .and_then(|()| out.flush());
                    }
                    if let ControllerEvent::JournalFailed { .. } = event {
                        // Nothing unrecorded was acknowledged; stop rather than go on
                        // without a store.
                        if config.etcd.is_some() {
                            tracing::error!("the journal in etcd no longer holds");
                            break Ended::Deposed;
                        }
                        ac.commands.close();
                        let _ = ac.task.await;
                        tracing::error!("the journal failed: stopping");
                        return Err("the journal could not be written".into());
                    }
                }
                Wake::Refused(refusal) => {
                    if args.events.is_some() {
                        let line = refused_event(&refusal, epoch.now());
                        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
                    }
                }
                Wake::Stats => {
                    next_stats = next_stats.zip(period).map(|(at, p)| at + p);
                    let s = *ac.stats.lock().map_err(|e| e.to_string())?;
                    let line = stats_event(&s, ac.connections.as_deref(), epoch.now());
                    if args.events.is_some() {
                        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
                    }
                }
                Wake::LeaseEnds => {
                    if !lease.as_ref().is_some_and(|l| l.holds(std::time::Instant::now())) {
                        tracing::error!("the lease in etcd ran out");
                        break Ended::Deposed;
                    }
                }
                Wake::Stop => break Ended::Stopped,
            }
        };
        if let Ended::Deposed = ended {
            if args.events.is_some() {
                let line = serde_json::json!({"event": "deposed", "unix_ms": unix_ms(), "at_ms": at_ms(epoch.now())});
                let _ = writeln!(out, "{line}").and_then(|()| out.flush());
            }
            tracing::warn!("no longer leading: standing by");
        } else {
            tracing::info!("stopping");
        }
        ac.commands.close();
        let stats = ac.task.await.map_err(|e| e.to_string())?;
        tracing::info!(?stats, "stopped");
        Ok(ended)
    }));
    // The tasks left (the status server's, the transport's) end here, releasing their
    // sockets: a deposed AC that leads again binds them anew.
    while ex.try_tick() {}
    ended
}

/// A refusal as a JSON event.
fn refused_event(r: &Refusal, now: Instant) -> serde_json::Value {
    serde_json::json!({
        "event": "refused", "peer": r.peer.map(|p| p.to_string()), "device": r.device,
        "reason": r.reason.name(), "detail": r.reason.to_string(),
        "suppressed": r.suppressed, "at_ms": at_ms(now),
    })
}

/// The periodic `stats` event: the controller's counters (refusals by reason), the
/// connection bounds' (for a transport with connections), RSS and threads.
fn stats_event(
    s: &Stats,
    connections: Option<&ConnectionStats>,
    now: Instant,
) -> serde_json::Value {
    let mut refused: serde_json::Map<_, _> = (s.rejections().iter())
        .map(|&(reason, n)| (reason.to_string(), n.into()))
        .collect();
    let connections = connections.map(|c| {
        let n = |a: &AtomicU64| a.load(Relaxed);
        refused.insert("tls".into(), n(&c.tls_refused).into());
        serde_json::json!({
            "open": n(&c.open), "evicted": n(&c.evicted), "refused": n(&c.refused),
            "unproven_expired": n(&c.unproven_expired), "idle_expired": n(&c.idle_expired),
            "handshakes_refused": n(&c.handshakes_refused), "accept_errors": n(&c.accept_errors),
        })
    });
    let proc = procfs::status("self");
    serde_json::json!({
        "event": "stats", "received": s.received, "rejected": s.rejected(), "refused": refused,
        "challenged": s.challenged, "unanswered": s.unanswered,
        "dropped_transmits": s.dropped_transmits, "connections": connections,
        "rss_kb": proc.map(|p| p.rss_kb), "threads": proc.map(|p| p.threads), "at_ms": at_ms(now),
    })
}

/// The `restored` event, written as it is serialized: a million states are not gathered
/// first.
/// Prints the `restored` line: every computation's LKGS as the AC restored it.
fn print_restored(controller: &Controller, epoch: &Epoch) {
    let restored = Restored {
        event: "restored",
        states: States(controller),
        at_ms: at_ms(epoch.now()),
    };
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, &restored)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush());
}

#[derive(serde::Serialize)]
struct Restored<'a> {
    event: &'static str,
    states: States<'a>,
    at_ms: f64,
}

/// Every computation's LKGS in hex, by name.
struct States<'a>(&'a Controller);

impl serde::Serialize for States<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ac = self.0;
        s.collect_map((0..ac.computation_count()).map(|c| {
            let id = ComputationId(c as u32);
            let state = ac.lkgs(id).map_or(&[][..], |(s, _)| s);
            (ac.computation_name(id), Hex(state))
        }))
    }
}

/// Bytes in lowercase hex.
struct Hex<'a>(&'a [u8]);

impl serde::Serialize for Hex<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::fmt::Display for Hex<'_> {
    /// Lowercase, two digits a byte, written 64 bytes at a time (a restore prints a million
    /// states).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut digits = [0u8; 128];
        for chunk in self.0.chunks(64) {
            for (pair, b) in digits.chunks_exact_mut(2).zip(chunk) {
                pair[0] = DIGITS[usize::from(b >> 4)];
                pair[1] = DIGITS[usize::from(b & 0xf)];
            }
            let text =
                std::str::from_utf8(&digits[..2 * chunk.len()]).map_err(|_| std::fmt::Error)?;
            f.write_str(text)?;
        }
        Ok(())
    }
}

/// Whether an AC on `listen` lets a peer beyond this host join as any device it can name:
/// neither certificates (QUIC) nor `require_auth` keep it out.
fn open_to_strangers(listen: SocketAddr, transport: Transport, require_auth: bool) -> bool {
    transport != Transport::Quic && !require_auth && !listen.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_printed_in_lowercase_hex_two_digits_a_byte() {
        let bytes: Vec<u8> = (0..=255).chain(0..=255).collect();
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(Hex(&bytes).to_string(), expected);
        assert_eq!(Hex(&[]).to_string(), "");
        assert_eq!(Hex(&[0x0a]).to_string(), "0a");
    }

    #[test]
    fn only_an_unauthenticated_ac_beyond_loopback_is_open_to_strangers() {
        let public: SocketAddr = "0.0.0.0:4700".parse().unwrap();
        let v6: SocketAddr = "[::]:4700".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:4700".parse().unwrap();
        assert!(open_to_strangers(public, Transport::Udp, false));
        assert!(open_to_strangers(v6, Transport::Tcp, false));
        assert!(!open_to_strangers(public, Transport::Udp, true));
        assert!(!open_to_strangers(public, Transport::Quic, false));
        assert!(!open_to_strangers(local, Transport::Tcp, false));
    }
}
