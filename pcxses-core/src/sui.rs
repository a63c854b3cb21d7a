//! The State Update Interface: how a computation hands out and takes back its state.

use alloc::vec::Vec;

/// A computation's "update API" (paper §2.3): capture its state as bytes, and restore a
/// state captured elsewhere. The bytes are the computation's own compact encoding; the
/// protocol moves them without looking inside.
pub trait StateUpdateInterface {
    /// The error a restore can fail with.
    type Error;

    /// Writes the current state into `out` (cleared by the caller).
    fn capture(&self, out: &mut Vec<u8>);

    /// Replaces the current state with `state`, as captured by [`capture`] of the same
    /// computation on any device.
    ///
    /// [`capture`]: StateUpdateInterface::capture
    fn restore(&mut self, state: &[u8]) -> Result<(), Self::Error>;
}
