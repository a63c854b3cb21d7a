//! The PCXSES device agent as a library and a program.
//!
//! The library holds the agent ([`agent`]: it joins the AC, runs its computations, reports
//! their states and takes over the ones the AC moves to it), the computations it runs
//! ([`computations`]: shipped WebAssembly modules and built-in counters), and the
//! WebAssembly host that runs shipped modules under the SUI ABI ([`guest`], the crate
//! `pcxses-guest-host`, which an integrator can use on its own to run a guest with its
//! limits, on an operating system or a microcontroller).
//!
//! The `pcxses-device` binary runs the agent.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod agent;
pub mod computations;
pub use pcxses_guest_host as guest;
