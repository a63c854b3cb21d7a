//! Runnable PCXSES programs: the AC daemon, the device agent, the failover demo, the load
//! generator and the computations that migrate. The binaries arrive with the transports;
//! this library has no API yet.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
