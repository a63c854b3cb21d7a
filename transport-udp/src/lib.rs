//! UDP transport for PCXSES on `smol`.
//!
//! One bottle per datagram, at most the MTU configured in the machine's
//! [`Limits`](pcxses_core::Limits). The AC serves every device from one socket; a datagram's
//! source address becomes the [`LinkId`](pcxses_core::LinkId) the core sees, and since the
//! core keys sessions by session id, a device whose address changes keeps its session. The
//! adapter only moves bytes: all protocol logic stays in `pcxses-core`, and the running of
//! the machines (timers, drains, handles) in `pcxses-driver`.
//!
//! An IPv4 source is encoded in its link id; an IPv6 source takes a slot in a table of at
//! most [`V6_LINKS`] (or the limit given to [`spawn_controller_with`]). A datagram the
//! controller refuses leaves no slot behind, and a full table reuses the slot accepted
//! least recently ([`Links`]), so a flood from forged or many source ports neither grows
//! the table nor keeps a new device out. Datagrams are handled in batches of 256, after
//! commands and timers ([`pcxses_driver::BATCH`]).
//!
//! The adapter's tasks run on an executor the application passes in, so that a small
//! program can run everything on one thread:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use pcxses_core::{Device, DeviceConfig, Epoch};
//! use pcxses_transport_udp::spawn_device;
//!
//! let ex = Arc::new(smol::Executor::new());
//! smol::block_on(ex.run(async {
//!     let epoch = Epoch::new();
//!     let device = Device::new(DeviceConfig::new("pump", 7), epoch.now());
//!     let handle = spawn_device(&ex, device, epoch, "127.0.0.1:4700".parse().unwrap()).await?;
//!     while let Ok(event) = handle.events.recv().await {
//!         println!("{event:?}");
//!     }
//!     std::io::Result::Ok(())
//! }))?;
//! # std::io::Result::Ok(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod controller;
mod device;
mod link;
mod socket;

pub use controller::{spawn_controller, spawn_controller_with, V6_LINKS};
pub use device::spawn_device;
pub use link::Links;
pub use pcxses_driver::{ControllerHandle, DeviceHandle, EVENT_QUEUE};
pub use socket::{bind, RECV_BUFFER};
