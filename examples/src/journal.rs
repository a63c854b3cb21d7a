//! The AC's durable store: an append-only file of checksummed records, synced before the
//! AC acknowledges what they hold (see [`pcxses_core::controller::Journal`]).
//!
//! The file starts with a magic line; each record is `len:u32 LE ‖ crc32:u32 LE ‖
//! kind:u8 ‖ payload`, the checksum over kind and payload. A record is either a whole
//! [`Controller::snapshot`] (written when the registry, a session or a placement changes)
//! or one LKGS (`name_len:u8 ‖ name ‖ session:u32 ‖ version:u32 ‖ state`). Joins alone
//! write a snapshot no faster than [`JOIN_SNAPSHOT_RATE`] bytes a second (a small AC at
//! once, one of 10,000 devices every 100 ms or so): a device whose session the restarted
//! AC does not know is told so and joins again. Each commit
//! writes its records at once and syncs the file. Opening replays the last snapshot and the
//! LKGS records after it; a file with a bad magic, a bad checksum or a cut record is an
//! error, never an empty store. When the file has grown to four times the size of a
//! snapshot (and past 1 MiB), it is compacted into a new file holding one snapshot, which
//! replaces the old one by an atomic rename.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use pcxses_core::controller::{ControllerEvent, Journal};
use pcxses_core::{Controller, SessionId};

const MAGIC: &[u8] = b"pcxses journal 1\n";
const SNAPSHOT: u8 = 1;
const LKGS: u8 = 2;
/// Bytes a second that snapshots written for joins alone may take.
pub const JOIN_SNAPSHOT_RATE: f64 = 10e6;
/// Below this size the file is never compacted.
const COMPACT_MIN: u64 = 1 << 20;

/// Why a journal could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file could not be read or written.
    #[error("{0}: {1}")]
    Io(PathBuf, io::Error),
    /// The file is not a journal.
    #[error("{0}: not a pcxses journal")]
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

/// An LKGS recorded after the last snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LkgsRecord {
    /// The computation's name.
    pub computation: String,
    /// The session it came from.
    pub session: SessionId,
    /// Its version in that session.
    pub version: u32,
    /// The state.
    pub state: Vec<u8>,
}

/// What a journal holds: the last snapshot and the states acknowledged after it.
#[derive(Debug)]
pub struct Recovered {
    /// The snapshot to restore.
    pub snapshot: Vec<u8>,
    /// The LKGS records after it, in order.
    pub lkgs: Vec<LkgsRecord>,
}

/// The journal file; see the module docs.
pub struct FileJournal {
    path: PathBuf,
    file: File,
    /// Records waiting for the next commit.
    pending: Vec<u8>,
    /// Whether the next commit writes a snapshot.
    snapshot_due: bool,
    /// Devices joined since the last snapshot.
    joined: bool,
    /// When the last snapshot was written.
    snapshot_at: std::time::Instant,
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

fn push_record(out: &mut Vec<u8>, kind: u8, payload: &[&[u8]]) {
    let len: usize = 1 + payload.iter().map(|p| p.len()).sum::<usize>();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    for p in payload {
        crc.update(p);
    }
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.push(kind);
    for p in payload {
        out.extend_from_slice(p);
    }
}

/// Reads every record of `bytes` (after the magic).
fn parse(path: &Path, bytes: &[u8]) -> Result<Recovered, JournalError> {
    let body = bytes
        .strip_prefix(MAGIC)
        .ok_or_else(|| JournalError::Magic(path.into()))?;
    let mut at = 0usize;
    let mut snapshot = None;
    let mut lkgs = Vec::new();
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
                lkgs.clear();
            }
            LKGS => lkgs.push(
                lkgs_record(payload).ok_or_else(|| JournalError::Corrupt(path.into(), offset))?,
            ),
            _ => return Err(JournalError::Corrupt(path.into(), offset)),
        }
        at += 8 + len;
    }
    let snapshot = snapshot.ok_or_else(|| JournalError::NoSnapshot(path.into()))?;
    Ok(Recovered { snapshot, lkgs })
}

fn lkgs_record(p: &[u8]) -> Option<LkgsRecord> {
    let (&n, rest) = p.split_first()?;
    let name = rest.get(..usize::from(n))?;
    let rest = &rest[usize::from(n)..];
    let session = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
    let version = u32::from_le_bytes(rest.get(4..8)?.try_into().ok()?);
    Some(LkgsRecord {
        computation: String::from_utf8(name.to_vec()).ok()?,
        session: SessionId(session),
        version,
        state: rest[8..].to_vec(),
    })
}

impl FileJournal {
    /// Opens the journal at `path`: `Ok((journal, None))` if there is none yet (the
    /// caller starts afresh and commits a first snapshot), `Ok((journal, Some(_)))` with
    /// what it holds, an error if it cannot be trusted. `sync`: sync every commit.
    pub fn open(path: &Path, sync: bool) -> Result<(FileJournal, Option<Recovered>), JournalError> {
        let recovered = match File::open(path) {
            Ok(mut f) => {
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes).map_err(io_err(path))?;
                Some(parse(path, &bytes)?)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(JournalError::Io(path.into(), e)),
        };
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io_err(path))?;
        let mut len = file.metadata().map_err(io_err(path))?.len();
        if recovered.is_none() {
            file.write_all(MAGIC).map_err(io_err(path))?;
            len = MAGIC.len() as u64;
        }
        let snapshot_len = recovered.as_ref().map_or(0, |r| r.snapshot.len() as u64);
        let journal = FileJournal {
            path: path.to_path_buf(),
            file,
            pending: Vec::new(),
            snapshot_due: recovered.is_none(),
            joined: false,
            snapshot_at: std::time::Instant::now(),
            len,
            snapshot_len,
            sync,
        };
        Ok((journal, recovered))
    }

    /// Replaces the file with one holding only a snapshot of `ac`.
    fn compact(&mut self, ac: &Controller) -> io::Result<()> {
        let tmp = self.path.with_extension("compacting");
        let mut bytes = MAGIC.to_vec();
        push_record(&mut bytes, SNAPSHOT, &[&ac.snapshot()]);
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
}

impl Journal for FileJournal {
    fn record(&mut self, ac: &Controller, event: &ControllerEvent) {
        use ControllerEvent as E;
        match event {
            E::StateStored { computation, .. } => {
                let (Some((state, version)), Some(session)) =
                    (ac.lkgs(*computation), ac.lkgs_session(*computation))
                else {
                    return;
                };
                let name = ac.computation_name(*computation).as_bytes();
                push_record(
                    &mut self.pending,
                    LKGS,
                    &[
                        &[name.len() as u8],
                        name,
                        &session.0.to_le_bytes(),
                        &version.to_le_bytes(),
                        state,
                    ],
                );
            }
            // A session the AC forgot costs its device one REJECT and a new join; the
            // states it stored are in the records. Snapshotting every join would cost a
            // whole snapshot per join, so joins share snapshots at a bounded rate.
            E::DeviceJoined { .. } => self.joined = true,
            E::Stalled { .. } | E::JournalFailed { .. } => {}
            _ => self.snapshot_due = true,
        }
    }

    fn commit(&mut self, ac: &Controller) -> io::Result<()> {
        let wait =
            std::time::Duration::from_secs_f64(self.snapshot_len as f64 / JOIN_SNAPSHOT_RATE);
        if self.joined && self.snapshot_at.elapsed() >= wait {
            self.snapshot_due = true;
        }
        if self.snapshot_due {
            self.joined = false;
            self.snapshot_at = std::time::Instant::now();
            // The snapshot holds every state recorded before it.
            self.pending.clear();
            let snapshot = ac.snapshot();
            self.snapshot_len = snapshot.len() as u64 + 9;
            push_record(&mut self.pending, SNAPSHOT, &[&snapshot]);
            self.snapshot_due = false;
        }
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

/// Restores `recovered` into a controller made from `config`, `repo` at `now`.
pub fn restore(
    config: pcxses_core::ControllerConfig,
    repo: impl pcxses_core::Repository + Send + 'static,
    recovered: &Recovered,
    now: pcxses_core::Instant,
) -> Result<Controller, String> {
    let mut ac =
        Controller::restore(config, repo, &recovered.snapshot, now).map_err(|e| e.to_string())?;
    for r in &recovered.lkgs {
        let id = ac
            .computation_id(&r.computation)
            .ok_or_else(|| format!("the journal names unknown computation {:?}", r.computation))?;
        ac.restore_lkgs(id, r.session, r.version, &r.state)
            .map_err(|e| e.to_string())?;
    }
    Ok(ac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcxses_core::controller::{ComputationSpec, DeviceSpec};
    use pcxses_core::{ControllerConfig, Instant, MemoryRepository};

    fn ac() -> Controller {
        let config = ControllerConfig::new(
            1,
            vec![DeviceSpec::new("dev0", &["comp0"])],
            vec![ComputationSpec::new("comp0", "c0")],
        );
        Controller::new(config, MemoryRepository::default(), Instant::from_millis(0)).unwrap()
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pcxses-journal-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_journal_gives_back_its_snapshot_and_states() {
        let d = dir("roundtrip");
        let path = d.join("j");
        let ac = ac();
        let (mut j, none) = FileJournal::open(&path, true).unwrap();
        assert!(none.is_none());
        j.commit(&ac).unwrap();
        let mut extra = Vec::new();
        let name = b"comp0";
        push_record(
            &mut extra,
            LKGS,
            &[&[5], name, &7u32.to_le_bytes(), &3u32.to_le_bytes(), b"abc"],
        );
        j.file.write_all(&extra).unwrap();
        drop(j);
        let (_, r) = FileJournal::open(&path, true).unwrap();
        let r = r.unwrap();
        assert_eq!(r.snapshot, ac.snapshot());
        assert_eq!(
            r.lkgs,
            [LkgsRecord {
                computation: "comp0".into(),
                session: SessionId(7),
                version: 3,
                state: b"abc".to_vec()
            }]
        );
        let restored = restore(
            ac_config(),
            MemoryRepository::default(),
            &r,
            Instant::from_millis(5),
        )
        .unwrap();
        assert_eq!(
            restored
                .lkgs(pcxses_core::controller::ComputationId(0))
                .unwrap()
                .0,
            b"abc"
        );
    }

    fn ac_config() -> ControllerConfig {
        ControllerConfig::new(
            1,
            vec![DeviceSpec::new("dev0", &["comp0"])],
            vec![ComputationSpec::new("comp0", "c0")],
        )
    }

    #[test]
    fn a_damaged_journal_is_an_error_never_an_empty_store() {
        let d = dir("damaged");
        let path = d.join("j");
        let (mut j, _) = FileJournal::open(&path, true).unwrap();
        j.commit(&ac()).unwrap();
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
