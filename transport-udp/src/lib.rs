//! UDP transport for PCXSES on `smol`: one bottle per datagram of at most the configured
//! MTU, sessions keyed by session id so a device whose address changes keeps its session.
//! Filled in by the transport work; this crate has no API yet.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
