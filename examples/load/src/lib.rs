//! A load generator for a PCXSES AC, as a library and a program.
//!
//! The library writes an AC configuration registering many devices ([`config`]), runs
//! that many device state machines from one process against a running AC over UDP and
//! sums up what they and the AC did ([`run`]), and counts the MORPHs in the events an AC
//! printed ([`morphs`]).
//!
//! The `pcxses-load` binary does each of these on its command line: `config`, `run` and
//! `morphs`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod config;
pub mod morphs;
pub mod run;
pub mod start;
