//! The contract between a controller's runtime and its durable store.

use super::{Controller, ControllerEvent};

/// A durable record of what the controller acknowledged, kept by its runtime.
///
/// The runtime hands every event of a drain to [`Journal::record`] (with the controller,
/// to read what the event is about, such as [`Controller::lkgs`]), holds back the
/// transmits of that drain, calls [`Journal::commit`], and sends them only once it
/// returned `Ok`: a device is never told that a state is stored before it is durable.
/// A runtime whose journal fails stops rather than acknowledge what it could not keep.
pub trait Journal: Send {
    /// Notes what `event` changed.
    fn record(&mut self, ac: &Controller, event: &ControllerEvent);
    /// Makes everything noted so far durable.
    fn commit(&mut self, ac: &Controller) -> std::io::Result<()>;
}
