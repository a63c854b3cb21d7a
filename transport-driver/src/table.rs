//! The AC's open connections under [`ConnectionLimits`]: which to evict for a new one,
//! and which have outlived their deadlines.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pcxses_core::LinkId;

use crate::limits::{ConnectionLimits, ConnectionStats};

/// Open connections by link, each with the time it opened and whether it is proven (the
/// controller accepted one of its bottles). At most `max_connections` entries: admitting
/// one more evicts the oldest unproven connection or is refused. Dropping what
/// [`Connections::admit`], [`Connections::remove`] or [`Connections::expire`] hands back
/// closes the connection.
#[derive(Debug)]
pub struct Connections<C> {
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
    entries: HashMap<LinkId, Entry<C>>,
    /// Unproven connections in the order they opened.
    unproven: BTreeMap<u64, LinkId>,
    next_seq: u64,
    /// When proven connections are next checked for idleness.
    next_idle_check: Instant,
}

#[derive(Debug)]
struct Entry<C> {
    connection: C,
    seq: u64,
    opened: Instant,
    heard: Instant,
    proven: bool,
}

/// What admitting a new connection did.
#[derive(Debug)]
pub enum Admission<C> {
    /// There was room.
    Admitted,
    /// The table was full: this unproven connection was evicted to make room.
    Evicted(LinkId, C),
    /// The table was full of proven connections: the new one is handed back, to be closed.
    Refused(C),
}

impl<C> Connections<C> {
    /// An empty table under `limits` (at least one connection), counting in `stats`.
    pub fn new(mut limits: ConnectionLimits, stats: Arc<ConnectionStats>) -> Self {
        limits.max_connections = limits.max_connections.max(1);
        Connections {
            limits,
            stats,
            entries: HashMap::new(),
            unproven: BTreeMap::new(),
            next_seq: 0,
            next_idle_check: Instant::now() + limits.idle,
        }
    }

    /// Connections open.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no connection is open.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The connection of `link`.
    pub fn get(&self, link: LinkId) -> Option<&C> {
        self.entries.get(&link).map(|e| &e.connection)
    }

    /// Adds the connection `link`, opened `now`; when the table is full, evicts the oldest
    /// unproven connection or refuses this one.
    pub fn admit(&mut self, link: LinkId, connection: C, now: Instant) -> Admission<C> {
        let mut admission = Admission::Admitted;
        if self.entries.len() >= self.limits.max_connections {
            match self.evict_oldest_unproven() {
                Some((old, c)) => admission = Admission::Evicted(old, c),
                None => {
                    self.stats.refused.fetch_add(1, Relaxed);
                    return Admission::Refused(connection);
                }
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.unproven.insert(seq, link);
        self.entries.insert(
            link,
            Entry {
                connection,
                seq,
                opened: now,
                heard: now,
                proven: false,
            },
        );
        self.stats.open.store(self.entries.len() as u64, Relaxed);
        admission
    }

    /// Removes the oldest unproven connection, to make room.
    pub fn evict_oldest_unproven(&mut self) -> Option<(LinkId, C)> {
        let (_, link) = self.unproven.pop_first()?;
        let entry = self.entries.remove(&link)?;
        self.stats.evicted.fetch_add(1, Relaxed);
        self.stats.open.store(self.entries.len() as u64, Relaxed);
        Some((link, entry.connection))
    }

    /// A bottle arrived on `link` at `now`; `accepted` when the controller accepted it,
    /// which proves the connection.
    pub fn heard(&mut self, link: LinkId, now: Instant, accepted: bool) {
        let Some(entry) = self.entries.get_mut(&link) else {
            return;
        };
        entry.heard = now;
        if accepted && !entry.proven {
            entry.proven = true;
            self.unproven.remove(&entry.seq);
        }
    }

    /// Removes the connection `link` (it closed).
    pub fn remove(&mut self, link: LinkId) -> Option<C> {
        let entry = self.entries.remove(&link)?;
        if !entry.proven {
            self.unproven.remove(&entry.seq);
        }
        self.stats.open.store(self.entries.len() as u64, Relaxed);
        Some(entry.connection)
    }

    /// Removes the connections whose deadline passed by `now` into `out`: unproven ones
    /// past their first-bottle deadline, and (checked every quarter of the idle timeout)
    /// proven ones idle for longer than the idle timeout.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<(LinkId, C)>) {
        while let Some((&seq, &link)) = self.unproven.first_key_value() {
            let Some(entry) = self.entries.get(&link) else {
                self.unproven.remove(&seq);
                continue;
            };
            if entry.opened + self.limits.first_bottle > now {
                break;
            }
            self.unproven.remove(&seq);
            if let Some(entry) = self.entries.remove(&link) {
                self.stats.unproven_expired.fetch_add(1, Relaxed);
                out.push((link, entry.connection));
            }
        }
        if now >= self.next_idle_check {
            self.next_idle_check = now + (self.limits.idle / 4).max(Duration::from_millis(10));
            let idle = self.limits.idle;
            let stale: Vec<LinkId> = self
                .entries
                .iter()
                .filter(|(_, e)| e.proven && e.heard + idle <= now)
                .map(|(&link, _)| link)
                .collect();
            for link in stale {
                if let Some(entry) = self.entries.remove(&link) {
                    self.stats.idle_expired.fetch_add(1, Relaxed);
                    out.push((link, entry.connection));
                }
            }
        }
        self.stats.open.store(self.entries.len() as u64, Relaxed);
    }

    /// When [`Connections::expire`] next has something to do, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        let unproven = self
            .unproven
            .first_key_value()
            .and_then(|(_, link)| self.entries.get(link))
            .map(|e| e.opened + self.limits.first_bottle);
        let idle = (self.entries.len() > self.unproven.len()).then_some(self.next_idle_check);
        unproven.into_iter().chain(idle).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max: usize) -> Connections<u32> {
        let limits = ConnectionLimits {
            max_connections: max,
            first_bottle: Duration::from_secs(1),
            idle: Duration::from_secs(10),
            max_handshakes: 1,
        };
        Connections::new(limits, Arc::default())
    }

    #[test]
    fn a_full_table_evicts_its_oldest_unproven_connection_and_never_grows() {
        let mut t = table(3);
        let now = Instant::now();
        for i in 0..3 {
            assert!(matches!(
                t.admit(LinkId(i), i as u32, now),
                Admission::Admitted
            ));
        }
        t.heard(LinkId(0), now, true);
        assert!(matches!(
            t.admit(LinkId(3), 3, now),
            Admission::Evicted(LinkId(1), 1)
        ));
        assert!(matches!(
            t.admit(LinkId(4), 4, now),
            Admission::Evicted(LinkId(2), 2)
        ));
        assert_eq!(t.len(), 3);
        t.heard(LinkId(3), now, true);
        t.heard(LinkId(4), now, true);
        assert!(matches!(t.admit(LinkId(5), 5, now), Admission::Refused(5)));
        assert_eq!(t.len(), 3);
        assert!(t.get(LinkId(0)).is_some());
    }

    #[test]
    fn unproven_connections_expire_at_their_deadline_and_idle_ones_later() {
        let mut t = table(8);
        let start = Instant::now();
        t.admit(LinkId(1), 1, start);
        t.admit(LinkId(2), 2, start);
        t.heard(LinkId(2), start, true);
        // A refused bottle does not prove a connection.
        t.heard(LinkId(1), start, false);
        assert_eq!(t.next_deadline(), Some(start + Duration::from_secs(1)));
        let mut out = Vec::new();
        t.expire(start + Duration::from_millis(999), &mut out);
        assert!(out.is_empty());
        t.expire(start + Duration::from_secs(1), &mut out);
        assert_eq!(out, [(LinkId(1), 1)]);
        out.clear();
        t.expire(start + Duration::from_secs(9), &mut out);
        assert!(out.is_empty());
        let late = t
            .next_deadline()
            .unwrap()
            .max(start + Duration::from_secs(10));
        t.expire(late, &mut out);
        assert_eq!(out, [(LinkId(2), 2)]);
        assert!(t.is_empty());
        assert_eq!(t.next_deadline(), None);
    }
}
