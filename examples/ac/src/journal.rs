//! The AC's durable store: an append-only file of checksummed records, synced before the
//! AC acknowledges what they hold (see [`pcxses_core::controller::Journal`]).
//!
//! The file starts with a magic line; each record is `len:u32 LE ‖ crc32:u32 LE ‖
//! kind:u8 ‖ payload`, the checksum over kind and payload. A record is either a whole
//! [`Controller::snapshot`] or one change the controller handed over: a device, a
//! computation (with its LKGS) or the MORPH counter, tens of bytes plus the state. Each
//! commit writes its records at once and syncs the file. Opening replays the last snapshot
//! and the changes after it; a file with a bad magic, a bad checksum or a cut record is an
//! error, never an empty store. [`FileJournal::start`] and compaction replace the file with
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
    /// A record is cut short: the file was truncated.
    #[error("{0}: truncated record at byte {1}")]
    Truncated(PathBuf, u64),
    /// A record's checksum does not match: the file is corrupt.
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
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    crc.update(payload);
    out.extend_from_slice(&(1 + payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
}

/// Reads every record of `bytes` (after the magic).
fn parse(path: &Path, bytes: &[u8]) -> Result<Recovered, JournalError> {
    let body = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| JournalError::Magic(path.into()))?;
    let mut at = 0usize;
    let mut snapshot = None;
    let mut changes = Vec::new();
    while at < body.len() {
        let offset = (MAGIC.len() + at) as u64;
        let truncated = || JournalError::Truncated(path.into(), offset);
        let header = body.get(at..at + 8).ok_or_else(truncated)?;
        let len = u32::from_le_bytes(header[..4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().unwrap_or_default());
        let record = body.get(at + 8..at + 8 + len).ok_or_else(truncated)?;
        if len == 0 || crc32fast::hash(record) != crc {
            return Err(JournalError::Corrupt(path.into(), offset));
        }
        let (kind, payload) = (record[0], &record[1..]);
        match kind {
            SNAPSHOT => {
                snapshot = Some(payload.to_vec());
                changes.clear();
            }
            CHANGE => changes.push(payload.to_vec()),
            _ => return Err(JournalError::Corrupt(path.into(), offset)),
        }
        at += 8 + len;
    }
    let snapshot = snapshot.ok_or_else(|| JournalError::NoSnapshot(path.into()))?;
    Ok(Recovered { snapshot, changes })
}

impl FileJournal {
    /// Opens the journal at `path`: `Ok((journal, None))` if there is none yet,
    /// `Ok((journal, Some(_)))` with what it holds, an error if it cannot be trusted.
    /// `sync`: sync every commit. Call [`FileJournal::start`] with the controller before
    /// attaching it.
    pub fn open(path: &Path, sync: bool) -> Result<(FileJournal, Option<Recovered>), JournalError> {
        // Absolute, so that its directory can be synced after a compaction.
        let path = &std::path::absolute(path).map_err(io_err(path))?;
        let recovered = match File::open(path) {
            Ok(mut f) => {
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes).map_err(io_err(path))?;
                Some(parse(path, &bytes)?)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(JournalError::Io(path.into(), e)),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_err(path))?;
        let journal = FileJournal {
            path: path.to_path_buf(),
            file,
            pending: Vec::new(),
            len: 0,
            snapshot_len: 0,
            sync,
        };
        Ok((journal, recovered))
    }

    /// Makes the file hold a snapshot of `ac` alone, the controller about to be attached
    /// (new, or restored from what [`FileJournal::open`] found).
    pub fn start(&mut self, ac: &Controller) -> io::Result<()> {
        self.compact(ac)
    }

    /// Replaces the file with one holding only a snapshot of `ac`.
    fn compact(&mut self, ac: &Controller) -> io::Result<()> {
        let tmp = self.path.with_extension("compacting");
        let mut bytes = MAGIC.to_vec();
        push_record(&mut bytes, SNAPSHOT, &ac.snapshot());
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.len = bytes.len() as u64;
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
        // Cut short, one byte flipped, another file altogether, no snapshot.
        std::fs::write(&path, &good[..good.len() - 3]).unwrap();
        assert!(matches!(
            FileJournal::open(&path, true),
            Err(JournalError::Truncated(..))
        ));
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(matches!(
            FileJournal::open(&path, true),
            Err(JournalError::Corrupt(..))
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
}
