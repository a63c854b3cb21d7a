//! The contract between a controller's runtime and its durable store, and how the
//! controller keeps it.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::event::ControllerEvent;
use super::snapshot::Part;
use super::Controller;

/// A durable record of what the controller acknowledged, kept by its runtime.
///
/// A journal starts holding a [`Controller::snapshot`] of the controller it is attached to
/// ([`Controller::with_journal`]). After every change, the controller hands it one record
/// per changed device, computation or counter ([`Journal::record`]) and calls
/// [`Journal::commit`] before it hands out any output that follows the change: a device is
/// never told that a state is stored before it is durable. [`Controller::restore`] takes
/// the snapshot and the records after it, in order. A journal may replace everything it
/// holds with a fresh snapshot of the controller at any commit (compaction). A runtime
/// whose journal fails stops rather than acknowledge what it could not keep.
pub trait Journal: Send {
    /// Notes one change record, to be made durable by the next commit.
    fn record(&mut self, change: &[u8]);
    /// Makes every record noted so far durable; `ac` is the controller, to snapshot. A
    /// journal that fails says why through its own means (a log) and returns the error.
    fn commit(&mut self, ac: &Controller) -> Result<(), CommitError>;
    /// Whether this journal's commits would still be accepted, checked before every output
    /// the controller hands out, changes or not. `false` when the store would refuse this
    /// runtime's writes, such as an AC that no longer leads its area: nothing it hands out
    /// then may be acted on. Always `true` by default.
    fn holds(&self) -> bool {
        true
    }
}

/// A journal could not make its records durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the journal could not make its records durable")]
pub struct CommitError;

impl Controller {
    /// Keeps `journal` durable before anything is acknowledged. The journal must already
    /// hold [`Controller::snapshot`] as of now; from then on, each drain of
    /// [`Controller::poll_output`] that follows a change first hands the journal one
    /// record per changed device, computation or counter (see [`Controller::restore`]),
    /// commits it, and only then hands out its outputs. If the commit fails, the drain's
    /// transmits are dropped (counted) and [`ControllerEvent::JournalFailed`] says so:
    /// nothing unrecorded is acknowledged.
    pub fn with_journal(mut self, journal: Box<dyn Journal>) -> Controller {
        self.journal = Some(journal);
        self.changes.start();
        self
    }

    /// Hands the journal a record of every changed part and commits it.
    pub(super) fn commit(&mut self) {
        let Some(mut journal) = self.journal.take() else {
            return;
        };
        let devices = self.changes.devices.list().iter().map(|&d| Part::Device(d));
        let comps = self.changes.comps.list().iter().map(|&c| Part::Comp(c));
        let morphs = self.changes.morphs.then_some(Part::Morphs);
        // One buffer for every record of the commit.
        let mut record = Vec::new();
        for part in morphs.into_iter().chain(devices).chain(comps) {
            self.change(part, &mut record);
            journal.record(&record);
        }
        self.changes.clear();
        let failed = journal.commit(self).is_err();
        self.journal = Some(journal);
        if failed {
            self.journal_failed();
        }
    }

    /// Before an output without changes: if the journal no longer holds, as if a commit
    /// had failed.
    pub(super) fn check_journal(&mut self) {
        if self.journal.as_ref().is_some_and(|j| !j.holds()) && self.outbox.has_transmits() {
            self.journal_failed();
        }
    }

    /// The journal failed: the drain's transmits (counted) and events are dropped, since
    /// nothing they report is durable, and the runtime is told.
    fn journal_failed(&mut self) {
        let dropped = self.outbox.drop_pending();
        self.stats.dropped_transmits += dropped as u64;
        let at = self.clock.latest();
        self.outbox.event(ControllerEvent::JournalFailed { at });
    }
}
