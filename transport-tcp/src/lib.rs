//! TCP transport for PCXSES on `smol`.
//!
//! Each bottle travels as one frame: its length as a LEB128 varint, then the bottle
//! ([`pcxses_core::frame`]). The AC accepts any number of connections, each a
//! [`LinkId`](pcxses_core::LinkId) of its own; a device connects to the AC and reconnects
//! with exponential backoff and jitter when the connection drops. A dropped connection is
//! not a death: only the dead interval decides. All protocol logic stays in `pcxses-core`.
//!
//! # Bounds against hostile peers
//!
//! The AC holds at most [`ConnectionLimits::max_connections`] connections. A connection is
//! *proven* once the controller accepted one of its bottles; a new connection beyond the
//! limit evicts the oldest unproven one (or is closed when all are proven), an unproven
//! connection is closed at its first-bottle deadline, and a proven one after its idle
//! timeout ([`ConnectionLimits`] gives the defaults). When `accept` fails (file descriptors
//! exhausted), the acceptor backs off (20 ms, doubling up to 1 s) and the oldest unproven
//! connection is closed to make room; warnings a peer can provoke are logged at most once
//! every 5 s. Frames are handled in bounded batches after commands and timers, and every
//! task yields between reads, so no peer starves the others, the timers, or the
//! application's tasks. [`ControllerHandle::connections`] counts what the bounds did.
//! These bounds are local policy: nothing on the wire changes.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod acceptor;
mod controller;
mod device;
pub mod limits;
mod reader;
pub mod serving;
pub mod table;
pub mod throttle;

pub use controller::{spawn_controller, spawn_controller_with, ControllerHandle};
pub use device::{spawn_device, DeviceHandle};
pub use limits::{ConnectionLimits, ConnectionStats};

/// Events waiting for the application before the adapter drops further ones (counted).
/// One input can make an AC report an event for each of many devices (a mass failure
/// declared in one timer pass), so the queue holds that many.
pub const EVENT_QUEUE: usize = 16_384;

/// Bytes of frames waiting to be written to one connection before further frames are
/// dropped (the peer's retransmissions recover them).
pub const WRITE_BUFFER: usize = 128 * 1024;

/// Completes at `at` on `epoch`'s clock; never, for [`pcxses_core::Instant::MAX`].
async fn until(epoch: pcxses_core::Epoch, at: pcxses_core::Instant) {
    match epoch.to_std(at) {
        Some(at) => {
            smol::Timer::at(at).await;
        }
        None => {
            smol::Timer::never().await;
        }
    }
}
