//! TCP transport for PCXSES on `smol`: length-prefixed frames
//! (`pcxses_core::frame`) over TCP connections, driving a `pcxses-core` Controller or
//! Device with the single drain loop of the Sans-IO core. Filled in by the transport work;
//! this crate has no API yet.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
