//! What the PCXSES programs (`pcxses-ac`, `pcxses-device`, `pcxses-attack`, `pcxses-load`
//! and the demo) share, in one place: choosing a transport on the command line and running
//! a protocol machine on it ([`transport`]), protocol events as JSON lines ([`events`]),
//! key files ([`keys`]), logs to stderr ([`logging`]), SIGINT and SIGTERM as a stream
//! ([`shutdown`]), and what `/proc` says about a process ([`procfs`]). It has no binary.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod events;
pub mod keys;
pub mod logging;
pub mod procfs;
pub mod shutdown;
pub mod transport;
