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
//! The adapter opens sockets; the driver runs the machines on them. An AC listens with
//! [`listen`] and runs on the [`Listener`] with [`spawn_controller`]; a device runs with
//! [`spawn_device`] on a [`Dial`], which connects (and reconnects) to the AC. Both return
//! the driver's handles ([`ControllerHandle`], [`DeviceHandle`]), re-exported here with the
//! two functions:
//!
//! ```no_run
//! use std::io;
//! use std::sync::Arc;
//!
//! use pcxses_core::{Controller, Device, Epoch};
//! use pcxses_transport_tcp::{listen, spawn_controller, spawn_device, ConnectionLimits, Dial};
//! use smol::Executor;
//!
//! /// Serves `controller` on TCP port 4700 and runs `device` against it, printing what the
//! /// device sees.
//! fn run(controller: Controller, device: Device, epoch: Epoch) -> io::Result<()> {
//!     let ex = Arc::new(Executor::new());
//!     smol::block_on(ex.run(async {
//!         let addr = "127.0.0.1:4700".parse().unwrap();
//!         let listener = listen(&ex, addr, ConnectionLimits::default())?;
//!         let ac = spawn_controller(&ex, controller, epoch, listener);
//!         let agent = spawn_device(&ex, device, epoch, Dial::new(ac.local_addr));
//!         while let Ok(event) = agent.events.recv().await {
//!             println!("{event:?}");
//!         }
//!         Ok(())
//!     }))
//! }
//! ```
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

pub use controller::{listen, Listener};
pub use device::Dial;
pub use pcxses_driver::{
    spawn_controller, spawn_device, Acs, ConnectionLimits, ConnectionStats, ControllerHandle,
    DeviceHandle, EVENT_QUEUE, WRITE_BUFFER,
};
