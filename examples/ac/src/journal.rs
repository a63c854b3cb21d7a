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
//! of a bad record, never an empty store.
//!
//! Three reads leave the file unchanged, each record by record, the file never held whole:
//! [`outline`] checks it and keeps nothing, [`live`] keeps what a restore needs (the last
//! snapshot and the changes after it) and [`scan`] keeps every record, for inspection.
//! [`FileJournal::start`] and compaction replace the file with one holding a single
//! snapshot by an atomic rename: at start, and once the file has grown to four times the
//! size of a snapshot (and past 1 MiB).

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use pcxses_core::controller::{CommitError, Journal};
use pcxses_core::Controller;

const MAGIC: &[u8] = b"pcxses journal 2\n";
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
    Snapshot = 1,
    /// One change after the last snapshot.
    Change = 2,
}

impl RecordKind {
    /// The kind a record's kind byte names.
    fn of(byte: u8) -> Option<RecordKind> {
        [RecordKind::Snapshot, RecordKind::Change]
            .into_iter()
            .find(|k| *k as u8 == byte)
    }
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
    /// How the file is laid out: its records, the record cut short at its end.
    pub outline: Outline,
}

/// The last snapshot of a journal and the changes after it, as the AC restores them
/// ([`live`]): the changes side by side in one buffer, not one allocation each.
#[derive(Debug, Default)]
pub struct Live {
    snapshot: Vec<u8>,
    changes: Vec<u8>,
    /// Where each change ends in `changes`.
    ends: Vec<usize>,
    /// How the file is laid out.
    pub outline: Outline,
}

impl Live {
    /// The change records after the snapshot, in order.
    pub fn changes(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, &end)| &self.changes[start..end])
    }

    /// `new`, a controller just made from its configuration, in the state these records
    /// describe, at `now`.
    pub fn restore(
        &self,
        new: Controller,
        now: pcxses_core::Instant,
    ) -> Result<Controller, pcxses_core::controller::SnapshotError> {
        new.restore(&self.snapshot, self.changes(), now)
    }
}

/// Where a read puts the records it finds.
trait Keep {
    /// Room for the payload of the record at `offset`, of `kind` and `len` bytes, with
    /// `rest` bytes of the file after it.
    fn room(&mut self, offset: u64, kind: RecordKind, len: usize, rest: u64) -> &mut [u8];
}

/// Every record, each in its own buffer ([`scan`]).
impl Keep for Vec<Record> {
    fn room(&mut self, offset: u64, kind: RecordKind, len: usize, _: u64) -> &mut [u8] {
        let payload = vec![0; len];
        self.push(Record {
            offset,
            kind,
            payload,
        });
        self.last_mut().map_or(&mut [], |r| &mut r.payload)
    }
}

/// No record: one buffer, read into and read over ([`outline`]).
struct Nothing(Vec<u8>);

impl Keep for Nothing {
    fn room(&mut self, _: u64, _: RecordKind, len: usize, _: u64) -> &mut [u8] {
        self.0.resize(len, 0);
        &mut self.0
    }
}

/// The last snapshot and the changes after it ([`live`]).
impl Keep for Live {
    fn room(&mut self, _: u64, kind: RecordKind, len: usize, rest: u64) -> &mut [u8] {
        if kind == RecordKind::Snapshot {
            self.snapshot = vec![0; len];
            // What follows the snapshot is all the room its changes can take: asked for,
            // not required, since the file may be larger than memory.
            self.changes = Vec::new();
            let _ = self
                .changes
                .try_reserve_exact(usize::try_from(rest).unwrap_or(0));
            self.ends.clear();
            return &mut self.snapshot;
        }
        let start = self.changes.len();
        self.changes.resize(start + len, 0);
        self.ends.push(start + len);
        &mut self.changes[start..]
    }
}

/// A journal as [`live`], [`outline`] or [`scan`] found it, without its records' contents.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outline {
    /// Whole records in the file, superseded ones included.
    pub records: usize,
    /// The record cut short at the end, if any, which resuming drops.
    pub torn: Option<TornTail>,
    /// Bytes of the file up to the end of its last whole record.
    pub whole_len: u64,
}

/// Reads the journal at `path` without changing it into `keep`, record by record: the file
/// is never held whole beside its records. `Ok(None)` if there is no journal, an error
/// naming the byte offset of any damage but a record cut short at the end.
fn read(path: &Path, keep: &mut impl Keep) -> Result<Option<Outline>, JournalError> {
    let io = io_err(path);
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let len = file.metadata().map_err(&io)?.len();
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; MAGIC.len()];
    if len >= MAGIC.len() as u64 {
        r.read_exact(&mut magic).map_err(&io)?;
    }
    if magic != MAGIC {
        return Err(JournalError::Magic(path.into()));
    }
    let mut outline = Outline {
        records: 0,
        torn: None,
        whole_len: MAGIC.len() as u64,
    };
    let mut snapshots = 0;
    while outline.whole_len < len {
        let (offset, rest) = (outline.whole_len, len - outline.whole_len);
        let mut header = [0u8; 8];
        if rest >= 8 {
            r.read_exact(&mut header).map_err(&io)?;
        }
        let size = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as u64;
        if rest < 8 || rest - 8 < size {
            // Cut short, and nothing can follow it: the write that stopped here was never
            // committed.
            outline.torn = Some(TornTail { offset, len: rest });
            break;
        }
        if size == 0 {
            return Err(JournalError::Corrupt(path.into(), offset));
        }
        let mut kind = [0u8];
        r.read_exact(&mut kind).map_err(&io)?;
        let Some(kind) = RecordKind::of(kind[0]) else {
            return Err(JournalError::Corrupt(path.into(), offset));
        };
        // Within the file's length, so never more than the file holds.
        let payload = keep.room(offset, kind, size as usize - 1, rest - 8 - size);
        r.read_exact(payload).map_err(&io)?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&[kind as u8]);
        crc.update(payload);
        if crc.finalize() != u32::from_le_bytes([header[4], header[5], header[6], header[7]]) {
            return Err(JournalError::Corrupt(path.into(), offset));
        }
        snapshots += usize::from(kind == RecordKind::Snapshot);
        outline.records += 1;
        outline.whole_len += 8 + size;
    }
    if snapshots == 0 {
        return Err(JournalError::NoSnapshot(path.into()));
    }
    Ok(Some(outline))
}

/// Reads the journal at `path` without changing it: `Ok(None)` if there is none, an error
/// naming the byte offset of any damage but a record cut short at the end.
pub fn scan(path: &Path) -> Result<Option<Scan>, JournalError> {
    let mut records = Vec::new();
    let outline = read(path, &mut records)?;
    Ok(outline.map(|outline| Scan { records, outline }))
}

/// Checks the journal at `path` as [`scan`] does, keeping none of its records.
pub fn outline(path: &Path) -> Result<Option<Outline>, JournalError> {
    read(path, &mut Nothing(Vec::new()))
}

/// Reads the journal at `path` as [`scan`] does, keeping only its last snapshot and the
/// changes after it: what the AC restores.
pub fn live(path: &Path) -> Result<Option<Live>, JournalError> {
    let mut live = Live::default();
    let outline = read(path, &mut live)?;
    Ok(outline.map(|outline| Live { outline, ..live }))
}

impl FileJournal {
    /// Opens the journal at `path` for appending (`sync`: sync every commit), laid out as
    /// `found` (what [`live`], [`outline`] or [`scan`] read of it; `None`: there was none):
    /// a record cut short at the end is logged as a warning and cut off the file, so that
    /// later records follow the last whole one. Call [`FileJournal::start`] with the
    /// controller before attaching it.
    pub fn resume(
        path: &Path,
        sync: bool,
        found: Option<Outline>,
    ) -> Result<FileJournal, JournalError> {
        // Absolute, so that its directory can be synced after a compaction.
        let path = &std::path::absolute(path).map_err(io_err(path))?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_err(path))?;
        if let Some((outline, torn)) = found.and_then(|s| Some((s, s.torn?))) {
            tracing::warn!(
                path = %path.display(), offset = torn.offset, bytes = torn.len,
                "the journal ends in a record cut short, never committed: dropping it"
            );
            file.set_len(outline.whole_len).map_err(io_err(path))?;
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
    /// (new, or restored from what [`live`] read).
    pub fn start(&mut self, ac: &Controller) -> io::Result<()> {
        self.compact(ac)
    }

    /// Replaces the file with one holding only a snapshot of `ac`.
    fn compact(&mut self, ac: &Controller) -> io::Result<()> {
        let tmp = self.path.with_extension("compacting");
        let snapshot = ac.snapshot();
        let head = record_head(RecordKind::Snapshot as u8, &snapshot);
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
        push_record(&mut self.pending, RecordKind::Change as u8, change);
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

    /// The journal at `path` opened as the AC opens it, with every record it held.
    fn open(path: &Path, sync: bool) -> Result<(FileJournal, Option<Scan>), JournalError> {
        let scanned = scan(path)?;
        let journal = FileJournal::resume(path, sync, scanned.as_ref().map(|s| s.outline))?;
        Ok((journal, scanned))
    }

    /// The last snapshot and the changes after it of what a journal was opened with, as
    /// [`live`] reads them too.
    fn held(scanned: Option<Scan>, path: &Path) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut records = scanned.unwrap().records;
        let last = records.iter().rposition(|r| r.kind == RecordKind::Snapshot);
        let mut live = records.drain(last.unwrap()..).map(|r| r.payload);
        let held = (live.next().unwrap(), live.collect::<Vec<_>>());
        let read = super::live(path).unwrap().unwrap();
        assert_eq!(
            (&read.snapshot, read.changes().collect::<Vec<_>>()),
            (&held.0, held.1.iter().map(Vec::as_slice).collect())
        );
        held
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
        let (mut j, none) = open(&path, true).unwrap();
        assert!(none.is_none());
        j.start(&ac).unwrap();
        j.record(b"one");
        j.record(b"two");
        j.commit(&ac).unwrap();
        j.record(b"three");
        j.commit(&ac).unwrap();
        j.record(b"never committed");
        drop(j);
        let (mut j, r) = open(&path, true).unwrap();
        let (snapshot, changes) = held(r, &path);
        assert_eq!(snapshot, ac.snapshot());
        assert_eq!(changes, [&b"one"[..], b"two", b"three"]);
        // Starting again keeps a snapshot alone, without the changes.
        j.start(&ac).unwrap();
        drop(j);
        let (_, r) = open(&path, true).unwrap();
        let (snapshot, changes) = held(r, &path);
        assert_eq!((snapshot, changes.len()), (ac.snapshot(), 0));
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_journal_compacts_once_it_outgrows_its_snapshot() {
        let d = dir("compact");
        let path = d.join("j");
        let ac = ac();
        let (mut j, _) = open(&path, false).unwrap();
        j.start(&ac).unwrap();
        let change = vec![7u8; 4096];
        for _ in 0..300 {
            j.record(&change);
            j.commit(&ac).unwrap();
        }
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len <= COMPACT_MIN + 4096 + 64, "{len} bytes");
        drop(j);
        let (_, r) = open(&path, false).unwrap();
        let (snapshot, changes) = held(r, &path);
        assert_eq!(snapshot, ac.snapshot());
        assert!(changes.len() < 300 && changes.iter().all(|c| *c == change));
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_damaged_journal_is_an_error_never_an_empty_store() {
        let d = dir("damaged");
        let path = d.join("j");
        let (mut j, _) = open(&path, true).unwrap();
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
            open(&path, true),
            Err(JournalError::Corrupt(_, 17))
        ));
        let mut flipped = good.clone();
        flipped[MAGIC.len() + 9] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(matches!(
            open(&path, true),
            Err(JournalError::Corrupt(_, 17))
        ));
        std::fs::write(&path, b"hello").unwrap();
        assert!(matches!(open(&path, true), Err(JournalError::Magic(..))));
        std::fs::write(&path, MAGIC).unwrap();
        assert!(matches!(
            open(&path, true),
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
        let (mut j, _) = open(&path, true).unwrap();
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
            assert_eq!(
                scanned.outline.torn,
                (cut > last).then_some(torn),
                "cut at {cut}"
            );
            assert_eq!(scanned.records.len(), 2, "cut at {cut}");
            // Scanning changed nothing.
            assert_eq!(std::fs::metadata(&path).unwrap().len(), cut as u64);
            let (mut j, r) = open(&path, true).unwrap();
            assert_eq!(held(r, &path).1, [b"one"]);
            assert_eq!(std::fs::read(&path).unwrap(), good[..last]);
            // What is appended next follows the last whole record.
            j.record(b"three");
            j.commit(&ac).unwrap();
            drop(j);
            let (_, r) = open(&path, true).unwrap();
            assert_eq!(held(r, &path).1, [&b"one"[..], b"three"]);
        }
        let _ = std::fs::remove_dir_all(d);
    }
}
