//! The smol driver that the PCXSES transport adapters build on.
//!
//! # What it is for
//!
//! The protocol machines of `pcxses-core` ([`Controller`](pcxses_core::Controller),
//! [`Device`](pcxses_core::Device)) move no bytes and read no clock. Running one on real
//! sockets takes the same work whatever the sockets are: a task that feeds it commands,
//! timeouts and received bottles, drains its transmits and events, publishes its counters
//! and a device's fence lease, and gives the application a handle. For connection
//! transports it also takes holding the connections an AC serves within bounds, reading
//! frames from byte streams and writing them through bounded buffers, and a device's
//! reconnecting with backoff. This crate does all of that once; an adapter keeps only
//! what moves bytes on its sockets.
//!
//! Every adapter returns the same handles, [`ControllerHandle`] and [`DeviceHandle`], so an
//! application can choose its transport at run time and hold either the same way.
//!
//! # How an adapter plugs in
//!
//! An adapter supplies how to accept or open a connection (or bind a socket), how to send
//! bytes on it (per [`TransmitKind`](pcxses_core::TransmitKind) where it keeps separate
//! streams), and how to read:
//!
//! - an AC on a **connection transport** hands each connection it accepts to a [`Server`]
//!   through [`Arrivals::open`], as a [`Connection`] (its sending side) and the future that
//!   keeps it going ([`Opened`]: reading its frames with [`Frames::read`], writing its
//!   [`Pipe`]s); [`spawn_controller`] runs the controller over the server;
//! - an AC on a **datagram transport** implements [`Port`] for its socket (receive one
//!   datagram, send one) and runs [`spawn_controller`] over it;
//! - a **device** implements [`Connect`]: one attempt at a connection to the AC (a datagram
//!   socket "connects" at once); [`spawn_device`] runs the device over it.
//!
//! Length-prefixed frames over TCP, one stream carrying every bottle
//! ([`Opened::stream`]), take a page:
//!
//! ```no_run
//! use std::io;
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//!
//! use pcxses_core::{Controller, Device, Epoch};
//! use pcxses_driver::{
//!     spawn_controller, spawn_device, Arrivals, Connect, ConnectionLimits, ControllerHandle,
//!     DeviceHandle, Frames, Opened, Pipe, Server,
//! };
//! use smol::net::{TcpListener, TcpStream};
//! use smol::Executor;
//!
//! /// How an AC accepts.
//! async fn accept(listener: TcpListener, arrivals: Arrivals<Pipe>) {
//!     while let Ok((stream, _)) = listener.accept().await {
//!         if !arrivals.open(|frames| Opened::stream(stream, frames)).await {
//!             return;
//!         }
//!     }
//! }
//!
//! pub async fn serve(
//!     ex: &Arc<Executor<'static>>,
//!     controller: Controller,
//!     epoch: Epoch,
//!     addr: SocketAddr,
//! ) -> io::Result<ControllerHandle> {
//!     let listener = TcpListener::bind(addr).await?;
//!     let local_addr = listener.local_addr()?;
//!     let server = Server::new(ex, ConnectionLimits::default(), |arrivals| {
//!         accept(listener, arrivals)
//!     });
//!     Ok(spawn_controller(ex, controller, epoch, local_addr, server))
//! }
//!
//! /// How a device connects.
//! struct Dial(SocketAddr);
//!
//! impl Connect for Dial {
//!     type Connection = Pipe;
//!
//!     fn ac(&self) -> SocketAddr {
//!         self.0
//!     }
//!
//!     async fn connect(&self, frames: &Frames) -> io::Result<Opened<Pipe>> {
//!         Ok(Opened::stream(TcpStream::connect(self.0).await?, frames.clone()))
//!     }
//! }
//!
//! pub fn join(
//!     ex: &Arc<Executor<'static>>,
//!     device: Device,
//!     epoch: Epoch,
//!     ac: SocketAddr,
//! ) -> DeviceHandle {
//!     spawn_device(ex, device, epoch, Dial(ac))
//! }
//! ```
//!
//! A transport with more than one stream implements [`Connection`] itself, sending
//! [`TransmitKind::Bulk`](pcxses_core::TransmitKind::Bulk) on the stream for bulk data, and
//! builds its [`Opened`] from its pipes' writing futures and its readers.
//!
//! # The bounds it keeps
//!
//! Nothing a peer sends makes the driver panic, queue without bound, or spin:
//!
//! - **Turns.** Commands and timers are served first; then at most [`ACCEPT_BATCH`] new
//!   connections and [`BATCH`] received bottles, and one drain for the whole batch (with a
//!   journal, one commit); then the driver yields to the executor's other tasks. Readers
//!   yield after every read.
//! - **Queues.** [`EVENT_QUEUE`] events wait for the application: an AC drops (and
//!   counts) further ones rather than stall, a device waits for room so that the
//!   application sees every `Stop`. Received bottles wait in a bounded queue (4096 for an
//!   AC, 1024 for a device) whose readers wait for room; at most [`ACCEPT_BATCH`] accepted
//!   connections wait for the AC.
//! - **Frames and writes.** A frame longer than the largest bottle
//!   ([`MAX_BOTTLE_LEN`](pcxses_core::MAX_BOTTLE_LEN)), or invalid, ends its connection.
//!   At most [`WRITE_BUFFER`] bytes wait to be written to a stream; further bottles are
//!   dropped and the peer's retransmissions recover them.
//! - **Connections.** An AC holds at most [`ConnectionLimits::max_connections`]; a new one
//!   evicts the oldest without an accepted bottle (or is closed when all have one); a
//!   connection without an accepted bottle is closed at its first-bottle deadline, a
//!   silent one after its idle timeout; when accepting runs out of file descriptors
//!   ([`Arrivals::exhausted`]), the oldest connection without an accepted bottle is closed
//!   to make room. [`ControllerHandle::connections`] counts what these bounds did.
//! - **Reconnects.** A device waits from 50 ms, doubling up to 5 s, ±50% jitter, between
//!   attempts ([`Backoff`]); a dropped connection is not a death, only the dead interval
//!   decides.
//! - **Logs.** A warning a peer can provoke is logged at most once every
//!   [`WARN_PERIOD`] ([`Throttle`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod backoff;
mod connection;
mod controller;
mod device;
mod drain;
mod frames;
mod handle;
mod limits;
mod pipe;
mod server;
mod table;
#[cfg(feature = "testing")]
pub mod testing;
mod throttle;
mod timer;

pub use backoff::{Backoff, BACKOFF_MAX, BACKOFF_MIN};
pub use connection::{Connection, Opened, SendError};
pub use controller::{spawn_controller, Port, BATCH};
pub use device::{spawn_device, Connect};
pub use frames::Frames;
pub use handle::{ControllerHandle, DeviceHandle};
pub use limits::{ConnectionLimits, ConnectionStats};
pub use pipe::{Pipe, WRITE_BUFFER};
pub use server::{Arrivals, Server, ACCEPT_BATCH};
pub use throttle::{Throttle, WARN_PERIOD};
pub use timer::until;

/// Events waiting for the application before an AC drops further ones (counted) and a
/// device waits for room. One input can make an AC report an event for each of many
/// devices (a mass failure declared in one timer pass), so the queue holds that many.
pub const EVENT_QUEUE: usize = 16_384;
