//! The computations a device agent runs: shipped WebAssembly modules (SUI ABI) and built-in
//! counters, with the states each reported so the agent can show which one the AC
//! acknowledged.

use std::collections::{BTreeMap, VecDeque};

use pcxses_core::device::Install;

use crate::guest::{Guest, GuestError, GuestLimits};

/// One computation running here: a built-in counter, or a shipped WebAssembly module.
enum Runner {
    /// A counter; its state is the count, 8 bytes little-endian.
    Counter(u64),
    /// A WebAssembly module.
    Guest(Box<Guest>),
}

/// The states one computation reported in this session: the last version number, and the
/// recent versions with their states.
#[derive(Default)]
struct Reported {
    last: u32,
    recent: VecDeque<(u32, Vec<u8>)>,
}

/// A guest that could not take an input line.
pub struct InputFailure {
    /// The computation.
    pub computation: String,
    /// Why.
    pub error: GuestError,
    /// Whether the guest was stopped (it ran out of fuel or trapped) rather than refusing
    /// the line.
    pub stopped: bool,
}

/// The computations this device runs, and which state each reported version carried.
#[derive(Default)]
pub struct Computations {
    running: BTreeMap<String, Runner>,
    /// Per computation: the states reported in this session.
    versions: BTreeMap<String, Reported>,
    /// Modules this device runs natively, by computation (`--guest`).
    native: BTreeMap<String, Vec<u8>>,
}

fn is_wasm(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm")
}

impl Computations {
    /// No computation running yet; `native` holds the modules of the computations this
    /// device runs natively, by name (the others are counters).
    pub fn new(native: BTreeMap<String, Vec<u8>>) -> Computations {
        Computations {
            native,
            ..Computations::default()
        }
    }

    /// Stops `name`.
    pub fn stop(&mut self, name: &str) {
        self.running.remove(name);
    }

    /// Stops every computation.
    pub fn stop_all(&mut self) {
        self.running.clear();
    }

    fn insert(&mut self, name: &str, runner: Runner) {
        self.running.insert(name.into(), runner);
        self.versions.remove(name);
    }

    /// Starts a computation this device runs natively, from its initial state.
    pub fn start(&mut self, name: &str) -> Result<(), String> {
        let runner = match self.native.get(name) {
            Some(wasm) => Runner::Guest(Box::new(
                Guest::load(wasm, GuestLimits::default()).map_err(|e| e.to_string())?,
            )),
            None => Runner::Counter(0),
        };
        self.insert(name, runner);
        Ok(())
    }

    /// Starts an installed computation from its LKGS: the invoked WebAssembly object if
    /// there is one, else a counter.
    pub fn install(&mut self, install: &Install) -> Result<(), String> {
        let module = install
            .objects()
            .find(|(o, bytes)| o.invoke && is_wasm(bytes));
        let lkgs = install.lkgs();
        let runner = match module {
            Some((_, bytes)) => {
                let mut guest =
                    Guest::load(bytes, GuestLimits::default()).map_err(|e| e.to_string())?;
                if !lkgs.is_empty() {
                    guest.restore(lkgs).map_err(|e| e.to_string())?;
                }
                Runner::Guest(Box::new(guest))
            }
            None => Runner::Counter(decode(lkgs)),
        };
        self.insert(&install.computation, runner);
        Ok(())
    }

    /// The computations running, by name.
    pub fn names(&self) -> Vec<String> {
        self.running.keys().cloned().collect()
    }

    /// Runs one tick of `name`, if it runs: the state to report, or why it failed (it is
    /// then stopped).
    pub fn step(&mut self, name: &str) -> Option<Result<Vec<u8>, String>> {
        let runner = self.running.get_mut(name)?;
        let state = match runner {
            Runner::Counter(count) => {
                *count += 1;
                Ok(count.to_le_bytes().to_vec())
            }
            Runner::Guest(g) => g.step().and_then(|()| g.capture()),
        };
        Some(match state {
            Ok(state) => {
                let r = self.versions.entry(name.into()).or_default();
                r.last += 1;
                r.recent.push_back((r.last, state.clone()));
                if r.recent.len() > 64 {
                    r.recent.pop_front();
                }
                Ok(state)
            }
            Err(e) => {
                self.running.remove(name);
                Err(e.to_string())
            }
        })
    }

    /// Hands `line` to every guest that takes input. A guest that runs out of fuel or
    /// traps on it is stopped, as on a failed tick.
    pub fn input(&mut self, line: &[u8]) -> Vec<InputFailure> {
        let mut failures = Vec::new();
        for (name, runner) in self.running.iter_mut() {
            if let Runner::Guest(g) = runner {
                if g.takes_input() {
                    if let Err(error) = g.input(line) {
                        let stopped = matches!(error, GuestError::OutOfFuel | GuestError::Trap(_));
                        failures.push(InputFailure {
                            computation: name.clone(),
                            error,
                            stopped,
                        });
                    }
                }
            }
        }
        for f in failures.iter().filter(|f| f.stopped) {
            self.running.remove(&f.computation);
        }
        failures
    }

    /// The state `name` reported as `version` in this session, if still remembered.
    pub fn state_of(&self, name: &str, version: u32) -> Option<&[u8]> {
        self.versions
            .get(name)?
            .recent
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, s)| &s[..])
    }

    /// The frame of `name`, if it runs and renders one.
    pub fn frame(&mut self, name: &str) -> Option<String> {
        match self.running.get_mut(name)? {
            Runner::Guest(g) => g.render().ok(),
            Runner::Counter(_) => None,
        }
    }

    /// The computations running that take input lines.
    pub fn taking_input(&self) -> Vec<String> {
        self.running
            .iter()
            .filter(|(_, r)| matches!(r, Runner::Guest(g) if g.takes_input()))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

/// The counter's count in its state (zero for the empty state).
fn decode(state: &[u8]) -> u64 {
    state
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// `NAME=PATH` pairs: the modules of computations run natively.
pub fn native_guests(pairs: &[String]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    pairs
        .iter()
        .map(|pair| {
            let (name, path) = pair
                .split_once('=')
                .ok_or_else(|| format!("--guest {pair}: expected NAME=PATH"))?;
            let wasm = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
            Ok((name.to_string(), wasm))
        })
        .collect()
}
