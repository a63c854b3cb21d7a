//! The AC application's commands as data, for drivers that pass them over a channel.

use super::event::{ComputationId, DeviceId};
use super::Controller;
use crate::error::CommandError;
use crate::time::Instant;

/// One call on a [`Controller`], as a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControllerCommand {
    /// [`Controller::dismiss`].
    Dismiss(DeviceId),
    /// [`Controller::release`].
    Release(ComputationId),
}

impl ControllerCommand {
    /// Applies the command to `controller` at `now`.
    pub fn apply(self, controller: &mut Controller, now: Instant) -> Result<(), CommandError> {
        match self {
            ControllerCommand::Dismiss(d) => controller.dismiss(now, d),
            ControllerCommand::Release(c) => controller.release(now, c),
        }
    }
}
