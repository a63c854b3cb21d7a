//! The device application's commands as data, for drivers that pass them over a channel.

use alloc::string::String;
use alloc::vec::Vec;

use super::event::InstallId;
use super::Device;
use crate::error::CommandError;
use crate::time::Instant;

/// One call on a [`Device`], as a value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceCommand {
    /// [`Device::set_state`].
    SetState {
        /// The computation.
        computation: String,
        /// Its current state.
        state: Vec<u8>,
    },
    /// [`Device::answer_install`].
    AnswerInstall {
        /// The install answered.
        id: InstallId,
        /// Whether the computation started.
        started: bool,
    },
    /// [`Device::leave`].
    Leave,
}

impl DeviceCommand {
    /// Applies the command to `device` at `now`.
    pub fn apply(self, device: &mut Device, now: Instant) -> Result<(), CommandError> {
        match self {
            DeviceCommand::SetState { computation, state } => {
                device.set_state(now, &computation, &state)
            }
            DeviceCommand::AnswerInstall { id, started } => device.answer_install(now, id, started),
            DeviceCommand::Leave => {
                device.leave(now);
                Ok(())
            }
        }
    }
}
