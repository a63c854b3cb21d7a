//! Runnable PCXSES programs and what they share: the AC daemon ([`daemon`], `pcxses-ac`),
//! the device agent ([`agent`], `pcxses-device`) with the WebAssembly host that runs
//! shipped computations ([`guest`]), the AC's configuration file, its content-addressed
//! object repository, the JSON lines the programs print as events, and a userspace network
//! link ([`link`]). The `demo` program runs them all in a failover.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod ac_config;
pub mod agent;
pub mod attack;
pub mod computations;
pub mod daemon;
pub mod events;
pub mod guest;
pub mod guest_build;
pub mod journal;
pub mod keys;
pub mod link;
pub mod logging;
pub mod procfs;
pub mod repository;
pub mod shutdown;
pub mod transport;
