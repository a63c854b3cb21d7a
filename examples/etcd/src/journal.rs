//! The AC's journal in etcd, every write fenced by the leadership.
//!
//! Keys, under the area's prefix:
//!
//! - `journal/<seq>`: the records of one commit (or one part of a commit too large for one
//!   value), each `len:u32 LE ‖ record`; `<seq>` is 16 hexadecimal digits, so keys sort in
//!   commit order;
//! - `snapshot/<generation>/<part>`: a [`Controller::snapshot`] in parts of at most
//!   [`PART`] bytes;
//! - `snapshot/current`: `<generation> <parts> <seq>`: the snapshot to restore from, and
//!   the first journal key after it.
//!
//! Every write is a transaction conditioned on the leader key this AC created (see
//! [`Leadership`]): a deposed leader's commit fails and it acknowledges nothing. A snapshot
//! is written at start and again once the journal has grown to four times its size (and
//! past [`COMPACT_MIN`]); the journal keys it covers and the snapshot before it are then
//! deleted.

use std::time::Instant;

use etcd_client::{Client, GetOptions, SortOrder, SortTarget, Txn, TxnOp};
use pcxses_core::controller::{CommitError, Journal};
use pcxses_core::Controller;

use crate::etcd::EtcdError;
use crate::leadership::{Leadership, Lease};

/// The largest value written, well under etcd's default request limit of 1.5 MiB.
pub const PART: usize = 512 * 1024;
/// Values per transaction, under etcd's default of 128 operations.
const PARTS_PER_TXN: usize = 2;
/// Below this many journal bytes the journal is never compacted.
pub const COMPACT_MIN: usize = 1 << 20;
/// Keys read per request when loading.
const PAGE: i64 = 16;

/// The journal; see the module docs.
pub struct EtcdJournal {
    leadership: Leadership,
    /// A commit failed: what it wrote, if anything, is unknown, so the journal holds no
    /// longer.
    failed: bool,
    prefix: String,
    /// Records waiting for the next commit.
    pending: Vec<u8>,
    /// The next journal key.
    seq: u64,
    /// The current snapshot's generation and size.
    generation: u64,
    snapshot_len: usize,
    /// Journal bytes written since the snapshot.
    journal_len: usize,
}

/// What the area's keys hold: the snapshot and the changes after it, for
/// [`Controller::restore`].
pub struct Stored {
    /// The snapshot.
    pub snapshot: Vec<u8>,
    /// The records after it, in order.
    pub changes: Vec<Vec<u8>>,
    generation: u64,
    next_seq: u64,
}

fn journal_key(prefix: &str, seq: u64) -> String {
    format!("{prefix}/journal/{seq:016x}")
}

fn part_key(prefix: &str, generation: u64, part: usize) -> String {
    format!("{prefix}/snapshot/{generation:016x}/{part:08x}")
}

fn current_key(prefix: &str) -> String {
    format!("{prefix}/snapshot/current")
}

/// The end of the range of keys that start with `prefix`.
fn range_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

impl EtcdJournal {
    /// Reads what the area's keys hold, `None` for an area never journalled.
    pub fn load(leadership: &Leadership, prefix: &str) -> Result<Option<Stored>, EtcdError> {
        let etcd = leadership.etcd();
        let current = current_key(prefix);
        let current = &current;
        let answer = etcd.call(|mut c| async move { c.get(current.as_str(), None).await })?;
        let Some(kv) = answer.kvs().first() else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(kv.value()).into_owned();
        let fields: Vec<u64> = text
            .split(' ')
            .filter_map(|f| u64::from_str_radix(f, 16).ok())
            .collect();
        let [generation, parts, first_seq] = fields[..] else {
            return Err(EtcdError::Corrupt(format!("snapshot/current is {text:?}")));
        };
        let from = part_key(prefix, generation, 0);
        let to = range_end(&format!("{prefix}/snapshot/{generation:016x}/"));
        let mut snapshot = Vec::new();
        let mut read = 0;
        scan(etcd, from, to, |_, value| {
            snapshot.extend_from_slice(value);
            read += 1;
        })?;
        if read != parts {
            return Err(EtcdError::Corrupt(format!(
                "snapshot {generation:x} has {read} of its {parts} parts"
            )));
        }
        // A commit's records may span values: they are read as one stream. A record cut
        // short at its end was being written by a leader that never acknowledged it.
        let mut stream = Vec::new();
        let mut next_seq = first_seq;
        let to = range_end(&format!("{prefix}/journal/"));
        scan(etcd, journal_key(prefix, first_seq), to, |_, value| {
            next_seq += 1;
            stream.extend_from_slice(value);
        })?;
        let changes = split_records(&stream);
        Ok(Some(Stored {
            snapshot,
            changes,
            generation,
            next_seq,
        }))
    }

    /// The lease of the leadership its every write is fenced by.
    pub fn lease(&self) -> Lease {
        self.leadership.lease()
    }

    /// Starts the journal of the area under `prefix` from `ac`, as [`Controller::with_journal`]
    /// asks: a new snapshot of `ac`, then nothing older. `stored` is what [`EtcdJournal::load`]
    /// read, if anything.
    pub fn start(
        leadership: Leadership,
        prefix: &str,
        stored: Option<&Stored>,
        ac: &Controller,
    ) -> Result<EtcdJournal, EtcdError> {
        let mut journal = EtcdJournal {
            leadership,
            failed: false,
            prefix: prefix.to_string(),
            pending: Vec::new(),
            seq: stored.map_or(0, |s| s.next_seq),
            generation: stored.map_or(0, |s| s.generation),
            snapshot_len: 0,
            journal_len: 0,
        };
        journal.snapshot(ac, stored.is_some())?;
        Ok(journal)
    }

    /// Writes a snapshot of `ac` as the next generation, makes it current, and deletes the
    /// journal keys and the snapshot it replaces.
    fn snapshot(&mut self, ac: &Controller, replaces: bool) -> Result<(), EtcdError> {
        let snapshot = ac.snapshot();
        let generation = self.generation + u64::from(replaces);
        let parts: Vec<&[u8]> = snapshot.chunks(PART).collect();
        let puts: Vec<TxnOp> = parts
            .iter()
            .enumerate()
            .map(|(i, part)| TxnOp::put(part_key(&self.prefix, generation, i), *part, None))
            .collect();
        for batch in puts.chunks(PARTS_PER_TXN) {
            self.fenced(batch.to_vec())?;
        }
        let current = format!("{generation:x} {:x} {:x}", parts.len(), self.seq);
        let mut ops = vec![TxnOp::put(current_key(&self.prefix), current, None)];
        let journal_from = journal_key(&self.prefix, 0);
        let journal_to = journal_key(&self.prefix, self.seq);
        ops.push(TxnOp::delete(
            journal_from,
            Some(etcd_client::DeleteOptions::new().with_range(journal_to)),
        ));
        if replaces {
            let old = format!("{}/snapshot/{:016x}/", self.prefix, self.generation);
            let end = range_end(&old);
            ops.push(TxnOp::delete(
                old,
                Some(etcd_client::DeleteOptions::new().with_range(end)),
            ));
        }
        self.fenced(ops)?;
        self.generation = generation;
        self.snapshot_len = snapshot.len();
        self.journal_len = 0;
        Ok(())
    }

    /// Runs `ops` in one transaction, if this AC still leads.
    fn fenced(&self, ops: Vec<TxnOp>) -> Result<(), EtcdError> {
        if !self.leadership.holds(Instant::now()) {
            return Err(EtcdError::NotLeader);
        }
        // Made again if etcd could not answer, it puts the same values, or nothing once
        // another AC leads.
        let txn = &Txn::new().when([self.leadership.fence()]).and_then(ops);
        let answer = self
            .leadership
            .etcd()
            .call(|mut c| async move { c.txn(txn.clone()).await })?;
        match answer.succeeded() && self.leadership.holds(Instant::now()) {
            true => Ok(()),
            false => Err(EtcdError::NotLeader),
        }
    }
}

/// Reads the keys from `from` up to `to` in order, a page at a time.
fn scan(
    etcd: &crate::etcd::Etcd,
    mut from: String,
    to: Vec<u8>,
    mut each: impl FnMut(&[u8], &[u8]),
) -> Result<(), EtcdError> {
    loop {
        let options = GetOptions::new()
            .with_range(to.clone())
            .with_sort(SortTarget::Key, SortOrder::Ascend)
            .with_limit(PAGE);
        let (key, options) = (&from, &options);
        let answer =
            etcd.call(
                |mut c: Client| async move { c.get(key.as_str(), Some(options.clone())).await },
            )?;
        for kv in answer.kvs() {
            each(kv.key(), kv.value());
        }
        match (answer.more(), answer.kvs().last()) {
            (true, Some(last)) => {
                let mut next = last.key().to_vec();
                next.push(0);
                from = String::from_utf8_lossy(&next).into_owned();
            }
            _ => return Ok(()),
        }
    }
}

/// The records of `stream`, each `len:u32 LE ‖ record`; a record cut short at the end is
/// dropped.
fn split_records(mut stream: &[u8]) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    while let Some((len, rest)) = stream.split_first_chunk::<4>() {
        let Some((record, rest)) = rest.split_at_checked(u32::from_le_bytes(*len) as usize) else {
            break;
        };
        records.push(record.to_vec());
        stream = rest;
    }
    if !stream.is_empty() {
        tracing::warn!("the journal in etcd ends with a record cut short: dropped");
    }
    records
}

impl Journal for EtcdJournal {
    fn holds(&self) -> bool {
        !self.failed && self.leadership.holds(Instant::now())
    }

    fn record(&mut self, change: &[u8]) {
        self.pending
            .extend_from_slice(&(change.len() as u32).to_le_bytes());
        self.pending.extend_from_slice(change);
    }

    fn commit(&mut self, ac: &Controller) -> Result<(), CommitError> {
        let pending = std::mem::take(&mut self.pending);
        let mut puts = Vec::new();
        for part in pending.chunks(PART) {
            puts.push(TxnOp::put(
                journal_key(&self.prefix, self.seq + puts.len() as u64),
                part,
                None,
            ));
        }
        for batch in puts.chunks(PARTS_PER_TXN) {
            if let Err(e) = self.fenced(batch.to_vec()) {
                tracing::error!("the journal in etcd: {e}");
                self.failed = true;
                return Err(CommitError);
            }
        }
        self.seq += puts.len() as u64;
        self.journal_len += pending.len();
        if self.journal_len > COMPACT_MIN && self.journal_len > 4 * self.snapshot_len {
            if let Err(e) = self.snapshot(ac, true) {
                tracing::error!("the journal in etcd, compacting: {e}");
                self.failed = true;
                return Err(CommitError);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_read_across_values_and_a_cut_tail_is_dropped() {
        let mut journal = Vec::new();
        for record in [&b"one"[..], b"", b"three"] {
            journal.extend_from_slice(&(record.len() as u32).to_le_bytes());
            journal.extend_from_slice(record);
        }
        let whole = split_records(&journal);
        assert_eq!(whole, vec![b"one".to_vec(), Vec::new(), b"three".to_vec()]);
        assert_eq!(split_records(&journal[..journal.len() - 1]), whole[..2]);
        assert_eq!(split_records(&journal[..2]), Vec::<Vec<u8>>::new());
    }
}
