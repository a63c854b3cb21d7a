//! # pcxses-core
//!
//! The Sans-IO core of PCXSES, a protocol for survivable networks of embedded devices.
//! An Area Controller (AC) watches devices through heartbeats; when one dies, the AC moves
//! that device's essential computation — its object code and its last known good state
//! (LKGS) — onto another device, which verifies it and carries on.
//!
//! This crate holds the whole protocol and no I/O: no sockets, no clock, no global
//! randomness, no `unsafe`. It builds for `no_std` targets with `alloc` (disable the
//! default `std` feature) and never panics on a peer's bytes: a bottle it refuses returns
//! a typed [`InputError`], is counted in [`Stats`], and changes nothing.
//!
//! ## The two machines
//!
//! * [`Controller`] — the AC: registry of devices and computations, liveness detection,
//!   the [`policy`] that picks targets, MORPH transfers, quarantine of computations that
//!   keep failing, and durability: a [`controller::Journal`] is handed a small record of
//!   each change before anything that follows from it is sent, and
//!   [`Controller::restore`] rebuilds the AC from a [`Controller::snapshot`] and those
//!   records.
//! * [`Device`] — the proxy agent: joins, sends HELLOs and state, fences itself when the
//!   AC stops answering, receives and verifies MORPHs.
//!
//! ## The run loop
//!
//! Both machines are driven the same way (the [`Machine`] trait names what they share):
//!
//! 1. Feed the bytes of each bottle that arrives (one datagram, or one frame of a stream)
//!    to [`Controller::handle_receive`] / [`Device::handle_receive`]. A bottle the machine
//!    refuses returns an [`InputError`]: it was counted and changed nothing, so log it and
//!    carry on — never let a peer's bytes end the loop with `?`.
//! 2. Drain `poll_output` until it returns [`Output::Timeout`]: send each
//!    [`Output::Transmit`] (its bytes borrow the machine, so send or copy them before
//!    polling again), act on each [`Output::Event`].
//! 3. Call `handle_timeout(now)` when the time of that last output comes, or earlier if
//!    bytes arrive; calling it early is harmless, and it cannot fail. On `std`,
//!    [`Epoch::timeout`] turns that time into a socket's read timeout as it is.
//!
//! Call-order rules:
//! * Drain after *every* call that feeds the machine: `handle_receive`, `handle_timeout`
//!   and every command (`set_state`, `leave`, `answer_install`, `release`, `dismiss`).
//! * Pass the current time with each call; time that goes backwards is treated as no time
//!   passing.
//! * A new [`Device`] sends nothing until its first `handle_timeout`: call it (and drain)
//!   once the link to the AC is up, and its first GOOD_MORNING leaves at once.
//! * After [`Device::leave`], keep driving until [`DeviceEvent::Left`]: the GOOD_BYE is
//!   retransmitted until the AC acknowledges it or the retries run out.
//! * Act on [`DeviceEvent::Stop`] before feeding the device anything else, since fencing
//!   is only as prompt as the application's reaction to it, and check
//!   [`Device::lease_until`] before every step of a computation, with the time of that
//!   step — before acting, not after — so that a device that stalled never acts on a
//!   lease that ran out meanwhile.
//!
//! Here one AC and one device run in one loop, passing bytes directly:
//!
//! ```
//! use std::time::Duration;
//! use pcxses_core::controller::{ComputationSpec, DeviceSpec};
//! use pcxses_core::{
//!     Controller, ControllerConfig, ControllerEvent, Device, DeviceConfig, DeviceEvent,
//!     Instant, LinkId, MemoryRepository, Output,
//! };
//!
//! let config = ControllerConfig::lan(
//!     1,
//!     vec![DeviceSpec::new("pump", &["flow"])],
//!     vec![ComputationSpec::new("flow", "flow.wasm")],
//! );
//! let mut repo = MemoryRepository::default();
//! repo.insert("flow.wasm", vec![0u8; 64]);
//! let mut ac = Controller::new(config, repo, Instant::from_millis(0))?;
//! let mut device_config = DeviceConfig::lan("pump", 0x5eed);
//! device_config.hello = Duration::from_millis(100);
//! let mut device = Device::new(device_config, Instant::from_millis(0));
//!
//! let (mut to_ac, mut to_device): (Vec<Vec<u8>>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
//! let mut stored = 0;
//! for step in 0..40 {
//!     let now = Instant::from_millis(step * 50);
//!
//!     device.handle_timeout(now);
//!     for bytes in to_device.drain(..) {
//!         // A refused bottle changed nothing: note it and carry on.
//!         if let Err(e) = device.handle_receive(now, &bytes) {
//!             eprintln!("device refused a bottle: {e}");
//!         }
//!     }
//!     // A computation steps only under the fence lease.
//!     let leased = device.lease_until().is_some_and(|until| now < until);
//!     if leased && device.running().any(|c| c == "flow") {
//!         device.set_state(now, "flow", &(step / 10).to_le_bytes())?;
//!     }
//!     loop {
//!         match device.poll_output() {
//!             Output::Transmit(t) => to_ac.push(t.bytes.to_vec()),
//!             Output::Event(DeviceEvent::Joined { run, hello, dead, .. }) => {
//!                 assert_eq!(run, ["flow"]);
//!                 // The AC granted the intervals proposed.
//!                 assert_eq!((hello, dead), (Duration::from_millis(100), Duration::from_secs(3)));
//!             }
//!             Output::Event(_) => {}
//!             Output::Timeout(_) => break,
//!         }
//!     }
//!
//!     ac.handle_timeout(now);
//!     for bytes in to_ac.drain(..) {
//!         if let Err(e) = ac.handle_receive(now, LinkId(1), &bytes, None) {
//!             eprintln!("AC refused a bottle: {e}");
//!         }
//!     }
//!     loop {
//!         match ac.poll_output() {
//!             Output::Transmit(t) => to_device.push(t.bytes.to_vec()),
//!             Output::Event(ControllerEvent::StateStored { .. }) => stored += 1,
//!             Output::Event(_) => {}
//!             Output::Timeout(_) => break,
//!         }
//!     }
//! }
//! // Four distinct states were set; unchanged ones were not sent again.
//! assert_eq!(stored, 4);
//! let flow = ac.computation_id("flow").unwrap();
//! assert_eq!(ac.lkgs(flow).unwrap().0, 3u64.to_le_bytes());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The `udp_ac` and `udp_device` examples in the repository run the same loop on a
//! blocking `std::net::UdpSocket` each.
//!
//! ## Configuration
//!
//! [`DeviceConfig`] and [`ControllerConfig`] come in presets of matching pairs, whose docs
//! give their numbers and what they are for: [`DeviceConfig::lan`] (also `new`) for a
//! reliable local network, [`DeviceConfig::wan`] for a lossy wide-area link,
//! [`DeviceConfig::microcontroller`] for small devices, and the [`ControllerConfig`]
//! functions of the same names. An AC preset grants the intervals its device preset
//! proposes; the device learns what was granted from [`DeviceEvent::Joined`]. Intervals
//! are [`core::time::Duration`]s, sent on the wire in whole milliseconds (rounded down).
//!
//! ## Cargo features
//!
//! * `std` (default): `std` in the dependencies, [`Epoch`], [`os_seed`] and
//!   [`SharedLease`].
//! * `controller` (default): the AC — [`Controller`], [`ControllerConfig`],
//!   [`ControllerEvent`], the [`controller`] and [`policy`] modules and the
//!   [`MemoryRepository`]. It implies `psk` and `signing`: an AC serves devices of every
//!   mode.
//! * `psk`: pre-shared-key mode (HMAC-SHA256) at the device: [`DeviceConfig::psk`] and
//!   the [`psk`] module.
//! * `signing`: Ed25519 code signing: [`DeviceConfig::code_key`] and the [`signing`]
//!   module.
//!
//! With none of them the crate is the [`Device`], the [`wire`] format, [`frame`] and
//! [`serial`], and links neither HMAC nor Ed25519: the device sends and accepts plain
//! bottles and checks no signature of a manifest (it still checks every object and state
//! it receives against its SHA-256). The wire format is the same in every build.
//!
//! ## On a microcontroller
//!
//! Depend on the crate without its default features (no `std`, no AC), adding only the
//! modes the device uses:
//!
//! ```toml
//! pcxses-core = { version = "0.1", default-features = false, features = ["psk"] }
//! ```
//!
//! Give the device [`DeviceConfig::microcontroller`], whose [`Limits::MICROCONTROLLER`]
//! bound what one MORPH may make it allocate; carry bottles on a UART with [`serial`].
//! `examples/firmware` in the repository is such a firmware, for Cortex-M4F and Cortex-M0+
//! parts, run under QEMU by the end-to-end tests.
//! Two choices of the cryptography are the firmware's, in its own `Cargo.toml`:
//! `ed25519-dalek`'s `fast` feature (precomputed tables: faster signature checks for tens
//! of kilobytes more flash) is off unless the firmware turns it on, and `sha2`'s
//! `force-soft-compact` feature trades SHA-2 speed for a smaller implementation on parts
//! where flash is tight:
//!
//! ```toml
//! sha2 = { version = "0.10", default-features = false, features = ["force-soft-compact"] }
//! ```
//!
//! ## The Bottle
//!
//! Every message is a [`Bottle`](wire::Bottle): one protocol version byte, then the bottle
//! as a postcard enum. The [`wire`] module holds it and every type of its encoding.
//! Decoding is strict and borrows from the input, so it allocates nothing for the messages
//! of the steady state.
//!
//! ```
//! use pcxses_core::wire::{Bottle, Hello, StateChunk};
//! use pcxses_core::{Limits, SessionId};
//!
//! let state = [1, 2, 3, 4];
//! let hello = Bottle::Hello(Hello {
//!     session: SessionId(0x2a),
//!     seq: 9,
//!     state: Some(StateChunk { handle: 0, version: 3, total_len: 4, index: 0, data: &state }),
//! });
//!
//! // Encode into a buffer whose length is the limit (the MTU for datagrams).
//! let mut buf = [0u8; 1200];
//! let n = hello.encode(&mut buf)?;
//! assert_eq!(n, 17);
//!
//! // Decode strictly: bad versions, truncation, trailing bytes and broken limits are errors.
//! let back = Bottle::decode(&buf[..n], &Limits::DEFAULT)?;
//! assert_eq!(back, hello);
//! assert!(Bottle::decode(&buf[..n - 1], &Limits::DEFAULT).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Stream transports put each bottle behind a length prefix; see [`frame`]. Serial lines
//! (a UART) put it in a COBS frame with a CRC, from which a receiver recovers after noise;
//! see [`serial`]. The normative
//! wire format and state machines are `docs/PROTOCOL.md` in the repository.
//!
//! ## Safety of fencing
//!
//! With fencing on, a device stops its computations when no HELLO it sent in the last
//! fence interval was acknowledged, and the AC moves them only after a full dead interval
//! without a HELLO. Since the AC received that HELLO after the device sent it, the device
//! stops first — provided the two clocks *run* at nearly the same rate: the fence interval
//! is at most three quarters of the dead interval, which tolerates a relative rate error
//! of well over 10% plus the application's reaction time. Clock offsets do not matter: no
//! timestamp crosses the wire.
//!
#![cfg_attr(
    not(feature = "std"),
    doc = "[`Epoch`]: #cargo-features
[`Epoch::timeout`]: #cargo-features
[`os_seed`]: #cargo-features
[`SharedLease`]: #cargo-features"
)]
#![cfg_attr(
    not(feature = "controller"),
    doc = "[`Controller`]: #cargo-features
[`Controller::handle_receive`]: #cargo-features
[`Controller::restore`]: #cargo-features
[`Controller::snapshot`]: #cargo-features
[`ControllerConfig`]: #cargo-features
[`ControllerEvent`]: #cargo-features
[`controller`]: #cargo-features
[`controller::Journal`]: #cargo-features
[`policy`]: #cargo-features
[`MemoryRepository`]: #cargo-features"
)]
#![cfg_attr(
    not(feature = "psk"),
    doc = "[`DeviceConfig::psk`]: #cargo-features
[`psk`]: #cargo-features"
)]
#![cfg_attr(
    not(feature = "signing"),
    doc = "[`DeviceConfig::code_key`]: #cargo-features
[`signing`]: #cargo-features"
)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "controller")]
pub mod controller;
pub mod device;
mod error;
pub mod frame;
mod io;
#[cfg(feature = "std")]
mod lease;
mod limits;
mod name;
#[cfg(feature = "controller")]
pub mod policy;
#[cfg(feature = "psk")]
pub mod psk;
#[cfg(feature = "controller")]
mod repository;
mod rng;
pub mod serial;
#[cfg(feature = "signing")]
pub mod signing;
mod stats;
mod sui;
mod time;
#[cfg(feature = "controller")]
mod timer;
mod transfer;
pub mod wire;

#[cfg(feature = "controller")]
pub use controller::{Controller, ControllerConfig, ControllerEvent};
pub use device::{Device, DeviceConfig, DeviceEvent};
pub use error::{CommandError, InputError};
pub use io::{LinkId, Machine, Output, Transmit, TransmitKind};
#[cfg(feature = "std")]
pub use lease::SharedLease;
pub use limits::{
    Limits, DEFAULT_MTU, MAX_BOTTLE_LEN, MAX_HOSTED, MAX_NAME_LEN, MAX_OBJECTS, PROTOCOL_VERSION,
};
pub use name::{Name, NameTooLong};
#[cfg(feature = "controller")]
pub use repository::{MemoryRepository, Repository};
pub use stats::Stats;
pub use sui::StateUpdateInterface;
pub use time::Instant;
#[cfg(feature = "std")]
pub use time::{os_seed, Epoch};
pub use wire::ids::SessionId;
