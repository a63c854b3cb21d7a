//! TCP transport for PCXSES on `smol`.
//!
//! Each bottle travels as one frame: its length as a LEB128 varint, then the bottle
//! ([`pcxses_core::frame`]). The AC accepts any number of connections, each a
//! [`LinkId`](pcxses_core::LinkId) of its own; a device connects to the AC and reconnects
//! with exponential backoff and jitter when the connection drops. A dropped connection is
//! not a death: only the dead interval decides. All protocol logic stays in `pcxses-core`,
//! and everything but moving bytes on TCP sockets in `pcxses-driver`: this crate holds the
//! listener, its acceptor and the device's connect.
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

pub use controller::{spawn_controller, spawn_controller_with};
pub use device::spawn_device;
pub use pcxses_driver::{
    ConnectionLimits, ConnectionStats, ControllerHandle, DeviceHandle, EVENT_QUEUE, WRITE_BUFFER,
};
