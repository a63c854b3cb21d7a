//! The contract between a controller's runtime and its durable store.

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
}

/// A journal could not make its records durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the journal could not make its records durable")]
pub struct CommitError;
