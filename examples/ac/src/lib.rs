//! The PCXSES Area Controller as a library and a program.
//!
//! The library holds the daemon ([`daemon`]: one transport, the devices of its
//! configuration, every protocol event as a JSON line), its TOML configuration ([`config`]:
//! settings and registry), its content-addressed object repository ([`repository`]) and its
//! durable journal ([`journal`]). [`check`] checks all of it before the daemon starts, and
//! [`inspect`] reads a journal for people. An integrator embeds the AC with [`daemon::run`], or reads
//! a configuration with [`config::AcConfig::load`] and drives a
//! [`pcxses_core::Controller`] of their own.
//!
//! The `pcxses-ac` binary runs the daemon, and makes what it needs: objects in a
//! repository, code-signing keys, pre-shared keys and a development PKI for QUIC.
//! `config/ac.toml` in this crate is a sample configuration.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod check;
pub mod config;
pub mod daemon;
pub mod http;
pub mod inspect;
pub mod journal;
pub mod metrics;
pub mod repository;
pub mod standby;
pub mod status;
pub mod table;
