//! Workspace-level tests of PCXSES.
//!
//! [`sim`] is a deterministic simulation: one [`pcxses_core::Controller`] and N
//! [`pcxses_core::Device`]s in one process, virtual time jumping to the next deadline, a
//! seeded network with loss, duplication, reordering, delay and tampering, and scheduled
//! crashes, hangs, partitions, graceful leaves and AC restarts (from the AC's journal,
//! [`memory_journal`]). Its checker asserts the protocol's invariants after every step;
//! [`lease`] tracks each device's fence lease from its traffic, against which every step
//! of a computation ([`app`]) is checked.
//!
//! [`programs`] runs the programs (`pcxses-ac`, `pcxses-device`, `pcxses-attack`) as real
//! processes for the end-to-end suites `tests/programs_*.rs`, and reads their JSON event
//! lines, each checked against `docs/EVENTS.md` ([`events_doc`]); [`mcu`] boots the device
//! firmware in QEMU beside them, and [`noise`] spoils serial lines.
//!
//! [`etcd`] starts real etcd clusters on 127.0.0.1 for the active/standby ACs, and
//! [`tcp_proxy`] is a TCP proxy whose connections a test can cut.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod app;
pub mod checker;
pub mod etcd;
pub mod events_doc;
pub mod lab;
pub mod lease;
pub mod mcu;
pub mod memory_journal;
pub mod net;
pub mod noise;
pub mod ports;
pub mod programs;
pub mod sim;
pub mod tcp_proxy;
