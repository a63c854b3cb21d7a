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
//! # Running a machine
//!
//! The driver holds the one way to run each machine: [`spawn_controller`] runs an AC over
//! a [`Port`] (a socket or listener an adapter opened), [`spawn_device`] runs a device over
//! a [`Connect`] (how an adapter reaches the AC). An adapter only opens its sockets, and
//! re-exports the two functions and the handles, so that a program on one transport needs
//! one adapter crate:
//!
//! | transport | the AC's port | the device's way to the AC |
//! | --- | --- | --- |
//! | UDP | `pcxses_transport_udp::bind(addr, V6_LINKS)?` | `pcxses_transport_udp::Dial::new(acs)` |
//! | TCP | `pcxses_transport_tcp::listen(&ex, addr, limits)?` | `pcxses_transport_tcp::Dial::new(acs)` |
//! | QUIC | `pcxses_transport_quic::listen(&ex, addr, &tls, limits)?` | `pcxses_transport_quic::Dial::new(acs, &tls)?` |
//!
//! `acs` is one AC's address, or the [`Acs`] of an area with standby ACs: a device moves
//! to the next when the one it uses stops answering.
//!
//! Whatever the transport, the AC's handle is a [`ControllerHandle`] and the device's a
//! [`DeviceHandle`], so an application can choose its transport at run time and hold
//! either the same way.
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
//!   [`Pipe`]s); the server is the [`Port`] the adapter opens;
//! - an AC on a **datagram transport** implements [`Port`] for its socket (hand over one
//!   datagram a call, send one or queue it for [`Port::flush`]);
//! - a **device** reaches the AC through a [`Connect`]: one attempt at a connection to an
//!   AC of its area (a datagram socket "connects" at once).
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
//!     spawn_controller, spawn_device, Acs, Arrivals, Connect, ConnectionLimits, ControllerHandle,
//!     DeviceHandle, Frames, Opened, Pipe, Server,
//! };
//! use smol::net::{TcpListener, TcpStream};
//! use smol::Executor;
//!
//! /// How an AC accepts.
//! async fn accept(listener: TcpListener, arrivals: Arrivals<Pipe>) {
//!     while let Ok((stream, peer)) = listener.accept().await {
//!         if !arrivals.open(Some(peer), |frames| Opened::stream(stream, frames)).await {
//!             return;
//!         }
//!     }
//! }
//!
//! /// How an AC opens its port: a listener on `addr` and the server of its connections.
//! pub async fn listen(
//!     ex: &Arc<Executor<'static>>,
//!     addr: SocketAddr,
//!     limits: ConnectionLimits,
//! ) -> io::Result<Server<Pipe>> {
//!     let listener = TcpListener::bind(addr).await?;
//!     let local_addr = listener.local_addr()?;
//!     Ok(Server::new(ex, local_addr, limits, |arrivals| {
//!         accept(listener, arrivals)
//!     }))
//! }
//!
//! /// How a device connects.
//! pub struct Dial(pub Acs);
//!
//! impl Connect for Dial {
//!     type Connection = Pipe;
//!
//!     fn acs(&self) -> &Acs {
//!         &self.0
//!     }
//!
//!     async fn connect(&self, ac: SocketAddr, frames: &Frames) -> io::Result<Opened<Pipe>> {
//!         Ok(Opened::stream(TcpStream::connect(ac).await?, frames.clone()))
//!     }
//! }
//!
//! /// What an application does with them.
//! pub async fn run(
//!     ex: &Arc<Executor<'static>>,
//!     controller: Controller,
//!     device: Device,
//!     epoch: Epoch,
//! ) -> io::Result<(ControllerHandle, DeviceHandle)> {
//!     let addr = "127.0.0.1:0".parse().unwrap();
//!     let listener = listen(ex, addr, ConnectionLimits::default()).await?;
//!     let ac = spawn_controller(ex, controller, epoch, listener);
//!     let agent = spawn_device(ex, device, epoch, Dial(ac.local_addr.into()));
//!     Ok((ac, agent))
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
//!   attempts ([`Backoff`]), each to the next of its ACs and bounded by
//!   [`CONNECT_TIMEOUT`]; a dropped connection is not a death, only the dead interval
//!   decides.
//! - **Logs.** A warning a peer can provoke is logged at most once every
//!   [`WARN_PERIOD`] ([`Throttle`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod acs;
mod backoff;
mod connection;
mod controller;
mod device;
mod drain;
mod frames;
mod handle;
mod limits;
mod pipe;
mod refusal;
mod server;
mod status;
mod table;
#[cfg(feature = "testing")]
pub mod testing;
mod throttle;
mod timer;

pub use acs::Acs;
pub use backoff::{Backoff, BACKOFF_MAX, BACKOFF_MIN};
pub use connection::{Connection, Opened, SendError};
pub use controller::{spawn_controller, Port, BATCH};
pub use device::{spawn_device, Connect, CONNECT_TIMEOUT};
pub use frames::Frames;
pub use handle::{ControllerHandle, DeviceHandle};
pub use limits::{ConnectionLimits, ConnectionStats};
pub use pipe::{Pipe, WRITE_BUFFER};
pub use refusal::{Inputs, Refusal, RefusalReason, MAX_REPORTED_NAME, REFUSAL_PERIOD};
pub use server::{Arrivals, Server, ACCEPT_BATCH};
pub use status::{AcStatus, StatusSource};
pub use throttle::{Throttle, WARN_PERIOD};
pub use timer::Alarm;

/// Events waiting for the application before an AC drops further ones (counted) and a
/// device waits for room. One input can make an AC report an event for each of many
/// devices (a mass failure declared in one timer pass), so the queue holds that many.
pub const EVENT_QUEUE: usize = 16_384;
