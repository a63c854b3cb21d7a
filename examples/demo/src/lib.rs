//! The PCXSES failover demo, and two pieces it shares with the end-to-end tests.
//!
//! The library holds a network link in userspace between devices and an AC, with limited
//! bandwidth, a fixed delay and a tap that can see, change or drop every bottle on the way
//! ([`link`]), the builds of what the demo and the tests run ([`artifacts`]): the
//! WebAssembly guests, the device firmware and the programs' executables, and the device
//! firmware booted in QEMU ([`mcu`]).
//!
//! The `demo` binary builds the guests and `pcxses-ac` and `pcxses-device`, starts an AC
//! and two devices on 127.0.0.1 as separate processes, kills one of them and shows its
//! computation resuming on the other (`cargo run --release -p pcxses-demo --bin demo`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod artifacts;
pub mod link;
pub mod mcu;
