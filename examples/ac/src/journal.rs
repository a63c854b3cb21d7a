//! The AC's durable store: an append-only file of checksummed records, synced before the
//! AC acknowledges what they hold (see [`pcxses_core::controller::Journal`]).
//!
//! The file starts with a magic line; each record is `len:u32 LE ‖ crc32:u32 LE ‖
//! kind:u8 ‖ payload`, the checksum over kind and payload. A record is either a whole
//! [`Controller::snapshot`] or one change the controller handed over: a device, a
//! computation (with its LKGS) or the MORPH counter, tens of bytes plus the state. Each
//! commit writes its records at once and syncs the file. Opening replays the last snapshot
//! and the changes after it. A record cut short at the end of the file was being written
//! when the AC stopped and was never committed: opening drops it with a warning and
//! truncates the file to the last whole record. Anything else wrong (a bad magic, a bad
//! checksum, a record of an unknown kind, no snapshot) is an error, naming the byte offset
//! of a bad record, never an empty store. [`scan`] reads a journal without changing it. [`FileJournal::start`] and compaction replace the file with
//! one holding a single snapshot by an atomic rename: at start, and once the file has
//! grown to four times the size of a snapshot (and past 1 MiB).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use pcxses_core::controller::{CommitError, Journal};
use pcxses_core::Controller;

const MAGIC: &[u8] = b"pcxses journal 2\n";
const SNAPSHOT: u8 = 1;
const CHANGE: u8 = 2;
/// Below this size the file is never compacted.
const COMPACT_MIN: u64 = 1 << 20;

/// Why a journal could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file could not be read or written.
    #[error("{0}: {1}")]
    Io(PathBuf, io::Error),
    /// The file is not a journal of this version.
    #[error("{0}: not a pcxses journal of version 2")]
    Magic(PathBuf),
    /// A record's checksum or kind is wrong: the file is damaged at this byte offset.
    #[error("{0}: corrupt record at byte {1}")]
    Corrupt(PathBuf, u64),
    /// The journal holds no snapshot to start from.
    #[error("{0}: no snapshot")]
    NoSnapshot(PathBuf),
}

/// What a journal holds: the last snapshot and the changes recorded after it.
#[derive(Debug)]
pub struct Recovered {
    /// The snapshot to restore.
    pub snapshot: Vec<u8>,
    /// The change records after it, in order.
    pub changes: Vec<Vec<u8>>,
}

impl Recovered {
    /// The controller these records describe, made from `config` and `repo` at `now`.
    pub fn restore(
        &self,
        config: pcxses_core::ControllerConfig,
        repo: impl pcxses_core::Repository + Send + 'static,
        now: pcxses_core::Instant,
    ) -> Result<Controller, pcxses_core::controller::SnapshotError> {
        let changes = self.changes.iter().map(Vec::as_slice);
        Controller::restore(config, repo, &self.snapshot, changes, now)
    }
}

/// The journal file; see the module docs.
pub struct FileJournal {
    path: PathBuf,
    file: File,
    /// Records waiting for the next commit.
    pending: Vec<u8>,
    /// Bytes in the file.
    len: u64,
    /// Size of the last snapshot record.
    snapshot_len: u64,
    /// Whether commits sync the file (durability) or leave it to the OS.
    sync: bool,
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> JournalError + '_ {
    move |e| JournalError::Io(path.to_path_buf(), e)
}

fn push_record(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    out.extend_from_slice(&record_head(kind, payload));
    out.extend_from_slice(payload);
}

/// What comes before `payload` in a record of `kind`: its length, checksum and kind.
fn record_head(kind: u8, payload: &[u8]) -> [u8; 9] {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    crc.update(payload);
    let mut head = [kind; 9];
    head[..4].copy_from_slice(&(1 + payload.len() as u32).to_le_bytes());
    head[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
    head
}

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// A whole [`Controller::snapshot`]: the records before it no longer count.
    Snapshot,
    /// One change after the last snapshot.
    Change,
}

/// One whole record of a journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its byte offset in the file.
    pub offset: u64,
    /// What it holds.
    pub kind: RecordKind,
    /// The snapshot or change, as the controller encoded it.
    pub payload: Vec<u8>,
}

/// A record cut short at the end of the file: it was never committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Its byte offset: the length the file is cut back to.
    pub offset: u64,
    /// Its bytes present in the file.
    pub len: u64,
}

/// Everything a journal file holds, read without changing it ([`scan`]).
#[derive(Clone, Debug)]
pub struct Scan {
    /// Every whole record, in order, the superseded ones included.
    pub records: Vec<Record>,
    /// The record cut short at the end, if any, which opening drops.
    pub torn: Option<TornTail>,
}

impl Scan {
    /// The last snapshot and the changes after it.
    fn live(&self) -> (&[u8], impl Iterator<Item = &[u8]>) {
        let last = (self.records.iter())
            .rposition(|r| r.kind == RecordKind::Snapshot)
            .unwrap_or(0);
        let snapshot = self.records.get(last).map_or(&[][..], |r| &r.payload);
        let changes = self.records.iter().skip(last + 1).map(|r| &*r.payload);
        (snapshot, changes)
    }

    /// The controller these records describe, made from `config` and `repo` at `now`.
    pub fn restore(
        &self,
        config: pcxses_core::ControllerConfig,
        repo: impl pcxses_core::Repository + Send + 'static,
        now: pcxses_core::Instant,
    ) -> Result<Controller, pcxses_core::controller::SnapshotError> {
        let (snapshot, changes) = self.live();
        Controller::restore(config, repo, snapshot, changes, now)
    }

    /// The last snapshot and the changes after it, taken out of the scan.
    pub fn into_recovered(mut self) -> Recovered {
        let last = (self.records.iter())
            .rposition(|r| r.kind == RecordKind::Snapshot)
            .unwrap_or(0);
        let mut live = self.records.drain(last..).map(|r| r.payload);
        let snapshot = live.next().unwrap_or_default();
        Recovered {
            snapshot,
            changes: live.collect(),
        }
    }

    /// Bytes of the file up to the end of its last whole record.
    pub fn whole_len(&self) -> u64 {
        (self.records.last()).map_or(MAGIC.len() as u64, |r| {
            r.offset + 8 + 1 + r.payload.len() as u64
        })
    }
}

/// Reads every record of `bytes` (after the magic).
fn parse(path: &Path, bytes: &[u8]) -> Result<Scan, JournalError> {
    let body = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| JournalError::Magic(path.into()))?;
    let mut at = 0usize;
    let mut records = Vec::new();
    let mut torn = None;
    while at < body.len() {
        let offset = (MAGIC.len() + at) as u64;
        let header = body.get(at..at + 8);
        let len = header.map_or(0, |h| u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize);
        let record = header.and_then(|_| body.get(at + 8..(at + 8).checked_add(len)?));
        let (Some(header), Some(record)) = (header, record) else {
            // Cut short, and nothing can follow it: the write that stopped here was never
            // committed.
            torn = Some(TornTail {
                offset,
                len: (body.len() - at) as u64,
            });
            break;
        };
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len == 0 || crc32fast::hash(record) != crc {
            return Err(JournalError::Corrupt(path.into(), offset));
        }
        let kind = match record[0] {
            SNAPSHOT => RecordKind::Snapshot,
            CHANGE => RecordKind::Change,
            _ => return Err(JournalError::Corrupt(path.into(), offset)),
        };
        records.push(Record {
            offset,
            kind,
            payload: record[1..].to_vec(),
        });
        at += 8 + len;
    }
    if !records.iter().any(|r| r.kind == RecordKind::Snapshot) {
        return Err(JournalError::NoSnapshot(path.into()));
    }
    Ok(Scan { records, torn })
}

/// Reads the journal at `path` without changing it: `Ok(None)` if there is none, an error
/// naming the byte offset of any damage but a record cut short at the end.
pub fn scan(path: &Path) -> Result<Option<Scan>, JournalError> {
    match File::open(path) {
        Ok(mut f) => {
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).map_err(io_err(path))?;
            parse(path, &bytes).map(Some)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(JournalError::Io(path.into(), e)),
    }
}

impl FileJournal {
    /// Opens the journal at `path`: `Ok((journal, None))` if there is none yet,
    /// `Ok((journal, Some(_)))` with what it holds, an error if it cannot be trusted. A
    /// record cut short at the end is dropped (see [`FileJournal::resume`]). `sync`: sync
    /// every commit. Call [`FileJournal::start`] with the controller before attaching it.
    pub fn open(path: &Path, sync: bool) -> Result<(FileJournal, Option<Recovered>), JournalError> {
        let scanned = scan(path)?;
        let journal = FileJournal::resume(path, sync, scanned.as_ref())?;
        Ok((journal, scanned.map(Scan::into_recovered)))
    }

    /// Opens the journal at `path` for appending, as `scanned` (what [`scan`] read of it)
    /// found it: a record cut short at the end is logged as a warning and cut off the file,
    /// so that later records follow the last whole one. Call [`FileJournal::start`] with
    /// the controller before attaching it.
    pub fn resume(
        path: &Path,
        sync: bool,
        scanned: Option<&Scan>,
    ) -> Result<FileJournal, JournalError> {
        // Absolute, so that its directory can be synced after a compaction.
        let path = &std::path::absolute(path).map_err(io_err(path))?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_err(path))?;
        if let Some((scan, torn)) = scanned.and_then(|s| Some((s, s.torn?))) {
            tracing::warn!(
                path = %path.display(), offset = torn.offset, bytes = torn.len,
                "the journal ends in a record cut short, never committed: dropping it"
            );
            file.set_len(scan.whole_len()).map_err(io_err(path))?;
            file.sync_all().map_err(io_err(path))?;
        }
        Ok(FileJournal {
            path: path.to_path_buf(),
            file,
            pending: Vec::new(),
            len: 0,
            snapshot_len: 0,
            sync,
        })
    }

    /// Makes the file hold a snapshot of `ac` alone, the controller about to be attached
    /// (new, or restored from what [`FileJournal::open`] found).
    pub fn start(&mut self, ac: &Controller) -> io::Result<()> {
        self.compact(ac)
    }

    /// Replaces the file with one holding only a snapshot of `ac`.
    fn compact(&mut self, ac: &Controller) -> io::Result<()> {
        let tmp = self.path.with_extension("compacting");
        let snapshot = ac.snapshot();
        let head = record_head(SNAPSHOT, &snapshot);
        let mut f = File::create(&tmp)?;
        for part in [MAGIC, &head[..], &snapshot] {
            f.write_all(part)?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.len = (MAGIC.len() + head.len() + snapshot.len()) as u64;
        self.snapshot_len = self.len;
        Ok(())
    }

    fn write_pending(&mut self, ac: &Controller) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.pending)?;
        if self.sync {
            self.file.sync_data()?;
        }
        self.len += self.pending.len() as u64;
        self.pending.clear();
        if self.len > COMPACT_MIN && self.len > 4 * self.snapshot_len {
            self.compact(ac)?;
        }
        Ok(())
    }
}

impl Journal for FileJournal {
    fn record(&mut self, change: &[u8]) {
        push_record(&mut self.pending, CHANGE, change);
    }

    fn commit(&mut self, ac: &Controller) -> Result<(), CommitError> {
        self.write_pending(ac).map_err(|e| {
            tracing::error!(path = %self.path.display(), error = %e, "journal commit failed");
            CommitError
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcxses_core::controller::{ComputationSpec, DeviceSpec};
    use pcxses_core::{ControllerConfig, Instant, MemoryRepository};

    fn config() -> ControllerConfig {
        ControllerConfig::new(
            1,
            vec![DeviceSpec::new("dev0", &["comp0"])],
            vec![ComputationSpec::new("comp0", "c0")],
        )
    }

    fn ac() -> Controller {
        Controller::new(
            config(),
            MemoryRepository::default(),
            Instant::from_millis(0),
        )
        .unwrap()
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pcxses-journal-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_journal_gives_back_its_snapshot_and_changes_in_order() {
        let d = dir("roundtrip");
        let path = d.join("j");
        let ac = ac();
        let (mut j, none) = FileJournal::open(&path, true).unwrap();
        assert!(none.is_none());
        j.start(&ac).unwrap();
        j.record(b"one");
        j.record(b"two");
        j.commit(&ac).unwrap();
        j.record(b"three");
        j.commit(&ac).unwrap();
        j.record(b"never committed");
        drop(j);
        let (mut j, r) = FileJournal::open(&path, true).unwrap();
        let r = r.unwrap();
        assert_eq!(r.snapshot, ac.snapshot());
        assert_eq!(r.changes, [&b"one"[..], b"two", b"three"]);
        // Starting again keeps a snapshot alone, without the changes.
        j.start(&ac).unwrap();
        drop(j);
        let (_, r) = FileJournal::open(&path, true).unwrap();
        let r = r.unwrap();
        assert_eq!((r.snapshot, r.changes.len()), (ac.snapshot(), 0));
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_journal_compacts_once_it_outgrows_its_snapshot() {
        let d = dir("compact");
        let path = d.join("j");
        let ac = ac();
        let (mut j, _) = FileJournal::open(&path, false).unwrap();
        j.start(&ac).unwrap();
        let change = vec![7u8; 4096];
        for _ in 0..300 {
            j.record(&change);
            j.commit(&ac).unwrap();
        }
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len <= COMPACT_MIN + 4096 + 64, "{len} bytes");
        drop(j);
        let (_, r) = FileJournal::open(&path, false).unwrap();
        let r = r.unwrap();
        assert_eq!(r.snapshot, ac.snapshot());
        assert!(r.changes.len() < 300 && r.changes.iter().all(|c| *c == change));
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_damaged_journal_is_an_error_never_an_empty_store() {
        let d = dir("damaged");
        let path = d.join("j");
        let (mut j, _) = FileJournal::open(&path, true).unwrap();
        j.start(&ac()).unwrap();
        drop(j);
        let good = std::fs::read(&path).unwrap();
        // One byte flipped, in the last record and in the first, another file altogether,
        // no snapshot.
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(matches!(
            FileJournal::open(&path, true),
            Err(JournalError::Corrupt(_, 17))
        ));
        let mut flipped = good.clone();
        flipped[MAGIC.len() + 9] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(matches!(
            FileJournal::open(&path, true),
            Err(JournalError::Corrupt(_, 17))
        ));
        std::fs::write(&path, b"hello").unwrap();
        assert!(matches!(
            FileJournal::open(&path, true),
            Err(JournalError::Magic(..))
        ));
        std::fs::write(&path, MAGIC).unwrap();
        assert!(matches!(
            FileJournal::open(&path, true),
            Err(JournalError::NoSnapshot(..))
        ));
        // And the damaged file is still there, untouched.
        assert_eq!(std::fs::read(&path).unwrap(), MAGIC);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_record_cut_short_at_the_end_is_dropped_and_the_file_cut_back() {
        let d = dir("torn");
        let path = d.join("j");
        let ac = ac();
        let (mut j, _) = FileJournal::open(&path, true).unwrap();
        j.start(&ac).unwrap();
        j.record(b"one");
        j.record(b"two");
        j.commit(&ac).unwrap();
        drop(j);
        let good = std::fs::read(&path).unwrap();
        let last = good.len() - (8 + 1 + 3);
        for cut in last..good.len() {
            std::fs::write(&path, &good[..cut]).unwrap();
            let scanned = scan(&path).unwrap().unwrap();
            let torn = TornTail {
                offset: last as u64,
                len: (cut - last) as u64,
            };
            assert_eq!(scanned.torn, (cut > last).then_some(torn), "cut at {cut}");
            assert_eq!(scanned.records.len(), 2, "cut at {cut}");
            // Scanning changed nothing.
            assert_eq!(std::fs::metadata(&path).unwrap().len(), cut as u64);
            let (mut j, r) = FileJournal::open(&path, true).unwrap();
            assert_eq!(r.unwrap().changes, [b"one"]);
            assert_eq!(std::fs::read(&path).unwrap(), good[..last]);
            // What is appended next follows the last whole record.
            j.record(b"three");
            j.commit(&ac).unwrap();
            drop(j);
            let (_, r) = FileJournal::open(&path, true).unwrap();
            assert_eq!(r.unwrap().changes, [&b"one"[..], b"three"]);
        }
        let _ = std::fs::remove_dir_all(d);
    }
}
