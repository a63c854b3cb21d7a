//! The computations this device runs: counters natively (their state is the count, 8
//! bytes little-endian), and with the `wasm` feature the WebAssembly modules MORPHs bring,
//! under the same fuel, table and instance limits as on the `pcxses-device` program, with
//! a linear memory of at most [`GUEST_MEMORY`] and states of at most the device's
//! `max_state`, so that [`MAX_HOSTED`] of them fit this device's heap. Each remembers the
//! states it reported lately, so the acknowledged one can be shown.

use alloc::string::String;
use alloc::vec::Vec;

use pcxses_core::device::Install;

/// States remembered per computation.
const REMEMBERED: usize = 4;

/// Computations this device runs at once (its `DeviceConfig::max_hosted`).
pub const MAX_HOSTED: usize = 2;

/// The largest linear memory of a WebAssembly computation, bytes.
#[cfg(feature = "wasm")]
pub const GUEST_MEMORY: usize = 256 * 1024;

/// What runs a computation.
enum Runner {
    /// A counter.
    Counter(u64),
    /// A WebAssembly module.
    #[cfg(feature = "wasm")]
    Guest(alloc::boxed::Box<pcxses_guest_host::Guest>),
}

/// One computation running here.
struct Running {
    name: String,
    runner: Runner,
    /// The last version reported, and the recent versions with their states.
    version: u32,
    recent: Vec<(u32, Vec<u8>)>,
}

/// The computations running here.
#[derive(Default)]
pub struct Computations {
    running: Vec<Running>,
}

/// What one step of a computation gave.
pub enum Step<'c> {
    /// Its name and new state.
    State(&'c str, &'c [u8]),
    /// It failed (ran out of fuel, trapped) and was stopped.
    Failed(String),
    /// No computation at that index.
    None,
}

/// Why a module the WebAssembly host refused does not start.
#[cfg(feature = "wasm")]
const REFUSED: &str = "the WebAssembly host refused the module or its state";

#[cfg(feature = "wasm")]
fn guest_limits() -> pcxses_guest_host::GuestLimits {
    pcxses_guest_host::GuestLimits {
        max_memory: GUEST_MEMORY,
        max_state: pcxses_core::Limits::MICROCONTROLLER.max_state as usize,
        ..pcxses_guest_host::GuestLimits::default()
    }
}

impl Computations {
    fn insert(&mut self, name: &str, runner: Runner) {
        self.stop(name);
        self.running.push(Running {
            name: name.into(),
            runner,
            version: 0,
            recent: Vec::new(),
        });
    }

    /// Stops the computation at `index`: its name.
    pub fn stop_at(&mut self, index: usize) -> Option<String> {
        (index < self.running.len()).then(|| self.running.remove(index).name)
    }

    /// Starts `name` from its initial state: a counter from zero.
    pub fn start(&mut self, name: &str) {
        self.insert(name, Runner::Counter(0));
    }

    /// Starts an installed computation from its LKGS: the invoked WebAssembly module if it
    /// brings one, else a counter; or why it cannot.
    pub fn install(&mut self, install: &Install) -> Result<(), &'static str> {
        // A copy it replaces goes first: both would not fit the heap.
        self.stop(&install.computation);
        let module = install
            .objects()
            .find(|(o, bytes)| o.invoke && bytes.starts_with(b"\0asm"));
        let lkgs = install.lkgs();
        let runner = match module {
            #[cfg(feature = "wasm")]
            Some((_, wasm)) => {
                let mut guest =
                    pcxses_guest_host::Guest::load(wasm, guest_limits()).map_err(|_| REFUSED)?;
                if !lkgs.is_empty() {
                    guest.restore(lkgs).map_err(|_| REFUSED)?;
                }
                Runner::Guest(alloc::boxed::Box::new(guest))
            }
            #[cfg(not(feature = "wasm"))]
            Some(_) => return Err("no WebAssembly interpreter in this build"),
            None => {
                let count = lkgs.get(..8).and_then(|b| b.try_into().ok());
                Runner::Counter(count.map_or(0, u64::from_le_bytes))
            }
        };
        self.insert(&install.computation, runner);
        Ok(())
    }

    /// Stops `name`.
    pub fn stop(&mut self, name: &str) {
        self.running.retain(|r| r.name != name);
    }

    /// How many run.
    pub fn len(&self) -> usize {
        self.running.len()
    }

    /// Steps the computation at `index` once.
    pub fn step(&mut self, index: usize) -> Step<'_> {
        let Some(runner) = self.running.get_mut(index).map(|r| &mut r.runner) else {
            return Step::None;
        };
        let state = match runner {
            Runner::Counter(count) => {
                *count += 1;
                Some(count.to_le_bytes().to_vec())
            }
            #[cfg(feature = "wasm")]
            Runner::Guest(g) => g.step().and_then(|()| g.capture()).ok(),
        };
        let Some(state) = state else {
            return Step::Failed(self.running.remove(index).name);
        };
        let r = &mut self.running[index];
        // As the device numbers them: a state equal to the last is not a new version.
        if r.recent.last().is_none_or(|(_, last)| *last != state) {
            r.version += 1;
            if r.recent.len() == REMEMBERED {
                r.recent.remove(0);
            }
            r.recent.push((r.version, state));
        }
        Step::State(&r.name, &r.recent[r.recent.len() - 1].1)
    }

    /// The name of the computation at `index`.
    pub fn name(&self, index: usize) -> Option<&str> {
        self.running.get(index).map(|r| r.name.as_str())
    }

    /// The text frame of the computation at `index`, if it is a WebAssembly module that
    /// renders one.
    pub fn frame(&mut self, index: usize) -> Option<String> {
        match &mut self.running.get_mut(index)?.runner {
            #[cfg(feature = "wasm")]
            Runner::Guest(g) => g.render().ok(),
            Runner::Counter(_) => None,
        }
    }

    /// The state `name` reported as `version`, if still remembered.
    pub fn state_of(&self, name: &str, version: u32) -> Option<&[u8]> {
        let r = self.running.iter().find(|r| r.name == name)?;
        let (_, state) = r.recent.iter().find(|(v, _)| *v == version)?;
        Some(state)
    }
}
