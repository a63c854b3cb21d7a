//! Leadership of an area: the leader key, created in a transaction only while no other AC
//! holds it, attached to a lease this AC keeps alive.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{
    Client, Compare, CompareOp, EventType, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn,
    TxnOp, WatchFilterType, WatchOptions,
};

use crate::etcd::{retrying, Etcd, EtcdError};

/// This AC leads its area until [`Lease::valid_until`]; see the crate docs.
pub struct Leadership {
    etcd: Arc<Etcd>,
    key: String,
    lease: i64,
    /// The revision that created the leader key: every fenced write compares it.
    revision: i64,
    /// Until when this AC may act as leader, and whether etcd said the lease is gone.
    lease_state: Arc<LeaseState>,
    /// The lease was revoked already.
    resigned: bool,
}

/// What the keep-alive task learns of the lease, read by the AC's loop.
struct LeaseState {
    epoch: Instant,
    /// Microseconds after `epoch` until which the lease surely has not expired.
    valid_until: AtomicU64,
    lost: AtomicBool,
    stop: AtomicBool,
}

impl LeaseState {
    fn extend(&self, sent: Instant, ttl: Duration) {
        // etcd renewed the lease after `sent`, for `ttl`; a tenth of it is left for clocks
        // that run at different rates.
        let until = sent + ttl - ttl / 10;
        let micros = until.saturating_duration_since(self.epoch).as_micros();
        self.valid_until
            .fetch_max(u64::try_from(micros).unwrap_or(u64::MAX), Ordering::AcqRel);
    }

    fn valid_until(&self) -> Option<Instant> {
        let micros = self.valid_until.load(Ordering::Acquire);
        (!self.lost.load(Ordering::Acquire)).then(|| self.epoch + Duration::from_micros(micros))
    }
}

/// What this AC knows of its lease, for a loop that waits on it: a leader that cannot renew
/// its lease learns so from [`Lease::valid_until`] passing, without a request of its own.
#[derive(Clone)]
pub struct Lease(Arc<LeaseState>);

impl Lease {
    /// Until when this AC may acknowledge anything: its lease cannot have expired before.
    /// `None` once the lease is known to be gone.
    pub fn valid_until(&self) -> Option<Instant> {
        self.0.valid_until()
    }

    /// Whether this AC still leads at `now`.
    pub fn holds(&self, now: Instant) -> bool {
        self.valid_until().is_some_and(|until| now < until)
    }
}

impl Leadership {
    /// Stands by until this AC, named `id`, leads the area whose keys start with `prefix`:
    /// the leader key is created with a lease of `ttl` only while it does not exist. While
    /// another AC holds it, this AC gives its lease back and watches the key, and tries
    /// again once the key is deleted (or the watch ends, or after `ttl` at most). While
    /// etcd cannot be reached it warns and tries again every half `ttl`: a standby waits
    /// out an outage of etcd as it waits out a leader.
    pub fn campaign(etcd: Arc<Etcd>, prefix: &str, id: &str, ttl: Duration) -> Leadership {
        let key = format!("{prefix}/leader");
        let ttl_secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let ttl = Duration::from_secs(ttl_secs as u64);
        loop {
            match Self::attempt(&etcd, &key, id, ttl) {
                Ok(Attempt::Won(lease, revision, sent)) => {
                    let lease_state = Arc::new(LeaseState {
                        epoch: sent,
                        valid_until: AtomicU64::new(0),
                        lost: AtomicBool::new(false),
                        stop: AtomicBool::new(false),
                    });
                    lease_state.extend(sent, ttl);
                    keep_alive(&etcd, lease, ttl, &lease_state);
                    tracing::info!(key, revision, lease, "leading");
                    return Leadership {
                        etcd,
                        key,
                        lease,
                        revision,
                        lease_state,
                        resigned: false,
                    };
                }
                Ok(Attempt::Lost { after }) => {
                    let woke = wait_for_release(&etcd, &key, after, ttl);
                    tracing::debug!(key, ?woke, "campaigning again");
                    if woke == Woke::Ended {
                        // A watch etcd refuses at once must not make a busy loop.
                        std::thread::sleep(ttl / 10);
                    }
                }
                Err(e) => {
                    tracing::warn!(key, "campaigning: {e}; trying again");
                    std::thread::sleep(ttl / 2);
                }
            }
        }
    }

    /// One attempt at the leader key with a lease of `ttl`.
    fn attempt(etcd: &Etcd, key: &str, id: &str, ttl: Duration) -> Result<Attempt, EtcdError> {
        let ttl_secs = ttl.as_secs() as i64;
        // The lease runs from its grant, after this instant.
        let sent = Instant::now();
        let lease = etcd.call(|mut c| async move { c.lease_grant(ttl_secs, None).await })?;
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key,
                id,
                Some(PutOptions::new().with_lease(lease.id())),
            )]);
        // Made again after an answer was lost, it fails on the key it created: this AC
        // then revokes its lease, which deletes the key, and campaigns again.
        let txn = &txn;
        let answer = etcd.call(|mut c| async move { c.txn(txn.clone()).await })?;
        let revision = answer.header().map_or(0, |h| h.revision());
        if answer.succeeded() {
            return Ok(Attempt::Won(lease.id(), revision, sent));
        }
        let id = lease.id();
        // A lease not revoked holds no key, and expires.
        if let Err(e) = etcd.call(|mut c| async move { c.lease_revoke(id).await }) {
            tracing::warn!(lease = id, "revoking the lease of a lost campaign: {e}");
        }
        // Deleted after the failed transaction: a delete made before the watch starts is
        // still seen.
        Ok(Attempt::Lost {
            after: revision + 1,
        })
    }

    /// Its lease: until when this AC leads.
    pub fn lease(&self) -> Lease {
        Lease(self.lease_state.clone())
    }

    /// Whether this AC still leads at `now` (see [`Lease::holds`]).
    pub fn holds(&self, now: Instant) -> bool {
        self.lease().holds(now)
    }

    /// The condition of every fenced write: the leader key is still the one this AC
    /// created.
    pub(crate) fn fence(&self) -> Compare {
        Compare::create_revision(self.key.as_str(), CompareOp::Equal, self.revision)
    }

    /// The connection.
    pub(crate) fn etcd(&self) -> &Arc<Etcd> {
        &self.etcd
    }

    /// Gives the leadership up: the lease is revoked, and a standby takes over at once.
    /// Dropping the leadership does the same, and says nothing of a failure.
    pub fn resign(mut self) -> Result<(), EtcdError> {
        self.revoke()
    }

    fn revoke(&mut self) -> Result<(), EtcdError> {
        self.lease_state.stop.store(true, Ordering::Release);
        self.resigned = true;
        let lease = self.lease;
        self.etcd
            .call(|mut c| async move { c.lease_revoke(lease).await })
            .map(|_| ())
    }
}

impl Drop for Leadership {
    /// Resigns, within the request timeout: a standby need not wait for the lease to
    /// expire.
    fn drop(&mut self) {
        if !self.resigned {
            if let Err(e) = self.revoke() {
                tracing::debug!(lease = self.lease, "resigning: {e}");
            }
        }
    }
}

/// What one campaign attempt came to.
enum Attempt {
    /// This AC holds the leader key with this lease, from this revision, since the lease
    /// was granted before this instant.
    Won(i64, i64, Instant),
    /// Another AC holds it; the revision to watch its deletion from.
    Lost { after: i64 },
}

/// Why a standby stopped waiting for the leader key to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Woke {
    /// The key was deleted.
    Deleted,
    /// The watch could not start, failed or was cancelled by etcd.
    Ended,
    /// Nothing happened within the bound.
    Bound,
}

/// Waits until `key` is deleted at `revision` or after, the watch ends, or `bound` has
/// passed. The watch sees deletes only, and ends with the stream it runs on, dropped here:
/// the client resets the stream and etcd cancels its watcher.
fn wait_for_release(etcd: &Etcd, key: &str, revision: i64, bound: Duration) -> Woke {
    let timeout = etcd.timeout();
    let woke = etcd.wait(bound, |client| async move {
        let options = &WatchOptions::new()
            .with_start_revision(revision)
            .with_filters([WatchFilterType::NoPut]);
        let watch = |mut c: Client| async move { c.watch(key, Some(options.clone())).await };
        let mut stream = match retrying(&client, timeout, watch).await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(key, "watching the leader key: {e}");
                return Woke::Ended;
            }
        };
        loop {
            match stream.message().await {
                Ok(Some(answer)) if answer.canceled() => {
                    let reason = answer.cancel_reason();
                    tracing::warn!(key, reason, "etcd cancelled the watch of the leader key");
                    return Woke::Ended;
                }
                Ok(Some(answer)) => {
                    let mut events = answer.events().iter();
                    if events.any(|e| e.event_type() == EventType::Delete) {
                        return Woke::Deleted;
                    }
                }
                Ok(None) => return Woke::Ended,
                Err(e) => {
                    tracing::warn!(key, "watching the leader key: {e}");
                    return Woke::Ended;
                }
            }
        }
    });
    woke.unwrap_or(Woke::Bound)
}

/// Renews `lease` every third of `ttl` until the leadership ends or etcd says it is gone.
fn keep_alive(etcd: &Etcd, lease: i64, ttl: Duration, state: &Arc<LeaseState>) {
    let state = state.clone();
    let timeout = etcd.timeout().min(ttl / 3);
    etcd.spawn(move |client| async move {
        let mut tick = tokio::time::interval(ttl / 3);
        let mut channel = None;
        while !state.stop.load(Ordering::Acquire) {
            tick.tick().await;
            let sent = Instant::now();
            let renewal = renew(&client, timeout, lease, &mut channel);
            match tokio::time::timeout(timeout, renewal).await {
                Ok(Ok(ttl)) if ttl > 0 => state.extend(sent, Duration::from_secs(ttl as u64)),
                Ok(Ok(_)) => {
                    tracing::error!(lease, "the leader's lease expired");
                    state.lost.store(true, Ordering::Release);
                    return;
                }
                Ok(Err(e)) => tracing::warn!(lease, "lease keep-alive: {e}"),
                Err(_) => {
                    tracing::warn!(lease, "lease keep-alive: no answer");
                    channel = None;
                }
            }
        }
    });
}

/// A keep-alive stream: requests one way, the lease's TTL the other.
type Channel = (LeaseKeeper, LeaseKeepAliveStream);

/// Renews `lease` once and gives its TTL from then, 0 if it is gone. `channel` is the
/// stream kept from the renewal before: if it fails (its member died, say) or there is
/// none, the renewal is made once on a new stream, opened on a member that answers.
async fn renew(
    client: &Client,
    timeout: Duration,
    lease: i64,
    channel: &mut Option<Channel>,
) -> Result<i64, EtcdError> {
    if let Some((keeper, stream)) = channel.as_mut() {
        match renew_on(keeper, stream).await {
            Ok(ttl) => return Ok(ttl),
            Err(e) => tracing::debug!(lease, "lease keep-alive, on a new stream: {e}"),
        }
    }
    *channel = None;
    let open = |mut c: Client| async move { c.lease_keep_alive(lease).await };
    let (keeper, stream) = channel.insert(retrying(client, timeout, open).await?);
    let renewed = renew_on(keeper, stream).await;
    if renewed.is_err() {
        *channel = None;
    }
    Ok(renewed?)
}

/// Renews a lease on `keeper` and gives its TTL from then, as `stream` tells.
async fn renew_on(
    keeper: &mut LeaseKeeper,
    stream: &mut LeaseKeepAliveStream,
) -> Result<i64, etcd_client::Error> {
    keeper.keep_alive().await?;
    match stream.message().await? {
        Some(answer) => Ok(answer.ttl()),
        None => Err(etcd_client::Error::LeaseKeepAliveError(
            "etcd ended the stream".to_string(),
        )),
    }
}
