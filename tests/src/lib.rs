//! Workspace-level tests of PCXSES: the deterministic simulation of one Controller and many
//! Devices, and the end-to-end suites over real sockets. Filled in with the Sans-IO core;
//! this library has no API yet.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
