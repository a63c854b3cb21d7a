//! UDP transport for PCXSES on `smol`.
//!
//! One bottle per datagram, at most the MTU configured in the machine's
//! [`Limits`](pcxses_core::Limits). The AC serves every device from one socket; a datagram's
//! source address becomes the [`LinkId`](pcxses_core::LinkId) the core sees, and since the
//! core keys sessions by session id, a device whose address changes keeps its session. The
//! adapter only moves bytes: all protocol logic stays in `pcxses-core`, and the running of
//! the machines (timers, drains, handles) in `pcxses-driver`.
//!
//! The adapter opens sockets; the driver runs the machines on them. An AC binds its
//! socket with [`bind`] and runs on it with [`spawn_controller`]; a device makes its
//! way to its ACs with [`Dial`] (a socket connected to the AC in use) and runs on it with
//! [`spawn_device`]. Both return the driver's handles ([`ControllerHandle`],
//! [`DeviceHandle`]), re-exported here with the two functions.
//!
//! An IPv4 source is encoded in its link id; an IPv6 source takes a slot in a table of at
//! most [`V6_LINKS`] (or the limit given to [`bind`]). A datagram the controller refuses
//! leaves no slot behind, and a full table reuses the slot accepted least recently
//! ([`Links`]), so a flood from forged or many source ports neither grows the table nor
//! keeps a new device out. Datagrams are handled in batches of 256, after commands and
//! timers ([`pcxses_driver::BATCH`]).
//!
//! The AC's socket moves datagrams in batches, a system call each: on Linux, `recvmmsg`
//! fills up to [`RECV_BATCH`] slots that are handed to the controller one by one, and the
//! controller's transmits are queued (their bytes copied into a buffer allocated once) and
//! sent with `sendmmsg`, up to [`SEND_BATCH`] a call, when the queue is full and when the
//! controller has been drained. Elsewhere it receives and sends one datagram a call.
//!
//! The tasks run on an executor the application passes in, so that a small program can
//! run everything on one thread:
//!
//! ```no_run
//! use std::io;
//! use std::sync::Arc;
//!
//! use pcxses_core::{Controller, Device, Epoch};
//! use pcxses_transport_udp::{bind, spawn_controller, spawn_device, Dial, V6_LINKS};
//! use smol::Executor;
//!
//! /// Serves `controller` on UDP port 4700 and runs `device` against it, printing what the
//! /// device sees.
//! fn run(controller: Controller, device: Device, epoch: Epoch) -> io::Result<()> {
//!     let ex = Arc::new(Executor::new());
//!     smol::block_on(ex.run(async {
//!         let socket = bind("127.0.0.1:4700".parse().unwrap(), V6_LINKS)?;
//!         let ac = spawn_controller(&ex, controller, epoch, socket);
//!         let agent = spawn_device(&ex, device, epoch, Dial::new(ac.local_addr));
//!         while let Ok(event) = agent.events.recv().await {
//!             println!("{event:?}");
//!         }
//!         Ok(())
//!     }))
//! }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod controller;
mod device;
mod inbox;
mod link;
mod outbox;
mod socket;

pub use controller::{bind, AcSocket, V6_LINKS};
pub use device::{DeviceSocket, Dial};
pub use inbox::RECV_BATCH;
pub use link::Links;
pub use outbox::SEND_BATCH;
pub use pcxses_driver::{
    spawn_controller, spawn_device, Acs, ControllerHandle, DeviceHandle, EVENT_QUEUE,
};
pub use socket::{bind_socket, RECV_BUFFER};
