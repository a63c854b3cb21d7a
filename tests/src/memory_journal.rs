//! A journal kept in memory and shared with the test that reads it back, compacting after
//! a chosen number of change records.

use std::sync::{Arc, Mutex};

use pcxses_core::controller::{CommitError, Journal, SnapshotError};
use pcxses_core::{Controller, ControllerConfig, Instant, MemoryRepository};

/// What the journal made durable: a snapshot and the changes committed after it.
#[derive(Clone, Debug, Default)]
pub struct Stored {
    /// The last snapshot.
    pub snapshot: Vec<u8>,
    /// The change records committed after it, in order.
    pub changes: Vec<Vec<u8>>,
    /// Commits so far.
    pub commits: u64,
}

impl Stored {
    /// The controller these records describe.
    pub fn restore(
        &self,
        config: ControllerConfig,
        repo: MemoryRepository,
        now: Instant,
    ) -> Result<Controller, SnapshotError> {
        let changes = self.changes.iter().map(Vec::as_slice);
        Controller::new(config, repo, now)?.restore(&self.snapshot, changes, now)
    }
}

/// A [`Journal`] in memory; see the module docs.
pub struct MemoryJournal {
    stored: Arc<Mutex<Stored>>,
    pending: Vec<Vec<u8>>,
    compact_after: usize,
}

impl MemoryJournal {
    /// A journal starting from `ac`, replacing its changes with a snapshot once more than
    /// `compact_after` are stored; and what it stores, to read back.
    pub fn start(ac: &Controller, compact_after: usize) -> (MemoryJournal, Arc<Mutex<Stored>>) {
        let stored = Arc::new(Mutex::new(Stored {
            snapshot: ac.snapshot(),
            ..Stored::default()
        }));
        let journal = MemoryJournal {
            stored: stored.clone(),
            pending: Vec::new(),
            compact_after,
        };
        (journal, stored)
    }
}

impl Journal for MemoryJournal {
    fn record(&mut self, change: &[u8]) {
        self.pending.push(change.to_vec());
    }

    fn commit(&mut self, ac: &Controller) -> Result<(), CommitError> {
        let mut stored = self.stored.lock().map_err(|_| CommitError)?;
        stored.changes.append(&mut self.pending);
        stored.commits += 1;
        if stored.changes.len() > self.compact_after {
            stored.snapshot = ac.snapshot();
            stored.changes.clear();
        }
        Ok(())
    }
}
