//! Runnable PCXSES programs and what they share: the AC daemon (`pcxses-ac`), the device
//! agent (`pcxses-device`), the AC's configuration file, its content-addressed object
//! repository, and the JSON lines both print as events.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod ac_config;
pub mod events;
pub mod guest;
pub mod keys;
pub mod logging;
pub mod procfs;
pub mod repository;
pub mod shutdown;
pub mod transport;
