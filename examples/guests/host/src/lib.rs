//! The host side of the SUI ABI (`docs/SUI-ABI.md`): running shipped computations,
//! WebAssembly modules, in `wasmi` with validation, fuel per call, memory and table
//! limits, and one allow-listed import. A guest that runs out of fuel, traps, grows past
//! its limits or hands back bad pointers fails that call with a [`GuestError`]; it never
//! takes the device down. The same host runs on an operating system (feature `std`, on by
//! default) and on a microcontroller (`no_std` with `alloc`).
//!
//! The interpreter dispatches instructions in a loop (`wasmi`'s `portable-dispatch`), so the
//! host stack a guest uses does not grow with the work it does. Modules are untrusted:
//! `wasmi`'s strict parsing limits are on (functions, globals, tables, segments,
//! parameters, and a least average body size against modules made to be slow to
//! compile), functions are translated lazily at the cost of the calling guest's fuel, and
//! a module may not run code while it is instantiated (no start function).

#![no_std]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use wasmi::{
    Caller, CompilationMode, Config, EnforcedLimits, Engine, Linker, Memory, Module, Store,
    StoreLimits, StoreLimitsBuilder, TrapCode, TypedFunc,
};

/// The module the one allowed import lives in.
pub const IMPORT_MODULE: &str = "pcx";

/// What a guest may use. Every call gets `fuel_per_call` units of fuel afresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestLimits {
    /// Fuel (roughly, Wasm instructions) per call into the guest.
    pub fuel_per_call: u64,
    /// Largest linear memory, bytes.
    pub max_memory: usize,
    /// Largest table, elements.
    pub max_table_elements: usize,
    /// Largest state the guest may capture or be restored from, bytes.
    pub max_state: usize,
    /// Largest rendered frame, bytes.
    pub max_frame: usize,
    /// Largest input line handed to the guest, bytes.
    pub max_input: usize,
}

impl Default for GuestLimits {
    /// 10 million fuel per call, 16 MiB of memory, 1,024 table elements, 64 KiB of state,
    /// 16 KiB per frame, 1 KiB per input line.
    fn default() -> Self {
        GuestLimits {
            fuel_per_call: 10_000_000,
            max_memory: 16 * 1024 * 1024,
            max_table_elements: 1024,
            max_state: 64 * 1024,
            max_frame: 16 * 1024,
            max_input: 1024,
        }
    }
}

/// Why a guest could not be loaded or a call into it failed.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// The bytes are not a valid WebAssembly module.
    #[error("invalid module: {0}")]
    Invalid(String),
    /// The module imports something outside the allow-list.
    #[error("import {0} is not allowed")]
    Import(String),
    /// The module lacks an export of the ABI.
    #[error("missing export {0}")]
    Missing(&'static str),
    /// The call used up its fuel (an endless loop, or simply too much work).
    #[error("out of fuel")]
    OutOfFuel,
    /// The guest trapped, or instantiating it broke a limit.
    #[error("trap: {0}")]
    Trap(String),
    /// The guest handed back a pointer and length outside its memory, or over a limit.
    #[error("bad buffer from the guest: {0}")]
    Buffer(&'static str),
    /// The guest reported a failure itself.
    #[error("guest error code {0}")]
    Guest(i32),
    /// The guest does not take input (it lacks the optional input exports).
    #[error("the guest takes no input")]
    NoInput,
}

struct HostData {
    limits: StoreLimits,
    log: Vec<String>,
}

/// One instantiated guest.
pub struct Guest {
    store: Store<HostData>,
    memory: Memory,
    step: TypedFunc<(), i32>,
    capture: TypedFunc<(), i64>,
    restore_buffer: TypedFunc<i32, i32>,
    restore: TypedFunc<i32, i32>,
    render: TypedFunc<(), i64>,
    /// `pcx_input_buffer` and `pcx_input`, for a guest that takes input.
    input: Option<(TypedFunc<i32, i32>, TypedFunc<i32, i32>)>,
    limits: GuestLimits,
}

/// Nested calls a guest may make; deeper recursion traps.
const MAX_RECURSION: usize = 1024;

/// Lines a guest may log per call at most; more are dropped.
const LOG_LINES: usize = 64;

impl Guest {
    /// Validates, links and instantiates `wasm` under `limits`.
    pub fn load(wasm: &[u8], limits: GuestLimits) -> Result<Guest, GuestError> {
        let mut config = Config::default();
        config
            .consume_fuel(true)
            .enforced_limits(EnforcedLimits::strict())
            .compilation_mode(CompilationMode::LazyTranslation)
            .allow_start_fn(false)
            .set_max_recursion_depth(MAX_RECURSION);
        let engine = Engine::new(&config);
        let module = Module::new(&engine, wasm).map_err(|e| GuestError::Invalid(e.to_string()))?;
        for import in module.imports() {
            if import.module() != IMPORT_MODULE || import.name() != "log" {
                return Err(GuestError::Import(format!(
                    "{}.{}",
                    import.module(),
                    import.name()
                )));
            }
        }
        let store_limits = StoreLimitsBuilder::new()
            .memory_size(limits.max_memory)
            .table_elements(limits.max_table_elements)
            .instances(1)
            .memories(1)
            .tables(1)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(
            &engine,
            HostData {
                limits: store_limits,
                log: Vec::new(),
            },
        );
        store.limiter(|d| &mut d.limits);
        store
            .set_fuel(limits.fuel_per_call)
            .map_err(|e| GuestError::Trap(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        linker
            .func_wrap(
                IMPORT_MODULE,
                "log",
                |mut caller: Caller<'_, HostData>, ptr: i32, len: i32| {
                    let Some(memory) = caller.get_export("memory").and_then(|e| e.into_memory())
                    else {
                        return;
                    };
                    let mut buf = vec![0u8; (len as u32).min(256) as usize];
                    if memory.read(&caller, ptr as u32 as usize, &mut buf).is_ok()
                        && caller.data().log.len() < LOG_LINES
                    {
                        let line = String::from_utf8_lossy(&buf).into_owned();
                        caller.data_mut().log.push(line);
                    }
                },
            )
            .map_err(|e| GuestError::Trap(e.to_string()))?;
        let instance = linker
            .instantiate_and_start(&mut store, &module)
            .map_err(|e| call_error(&e))?;
        let memory = instance
            .get_memory(&store, "memory")
            .ok_or(GuestError::Missing("memory"))?;
        let step = instance
            .get_typed_func(&store, "pcx_step")
            .map_err(|_| GuestError::Missing("pcx_step"))?;
        let capture = instance
            .get_typed_func(&store, "pcx_capture")
            .map_err(|_| GuestError::Missing("pcx_capture"))?;
        let restore_buffer = instance
            .get_typed_func(&store, "pcx_restore_buffer")
            .map_err(|_| GuestError::Missing("pcx_restore_buffer"))?;
        let restore = instance
            .get_typed_func(&store, "pcx_restore")
            .map_err(|_| GuestError::Missing("pcx_restore"))?;
        let render = instance
            .get_typed_func(&store, "pcx_render")
            .map_err(|_| GuestError::Missing("pcx_render"))?;
        let input_buffer = instance.get_typed_func(&store, "pcx_input_buffer");
        let input = instance.get_typed_func(&store, "pcx_input");
        let input = match (input_buffer, input) {
            (Ok(buffer), Ok(input)) => Some((buffer, input)),
            (Err(_), Err(_)) => None,
            (Err(_), Ok(_)) => return Err(GuestError::Missing("pcx_input_buffer")),
            (Ok(_), Err(_)) => return Err(GuestError::Missing("pcx_input")),
        };
        Ok(Guest {
            store,
            memory,
            step,
            capture,
            restore_buffer,
            restore,
            render,
            input,
            limits,
        })
    }

    fn refuel(&mut self) -> Result<(), GuestError> {
        self.store.data_mut().log.clear();
        self.store
            .set_fuel(self.limits.fuel_per_call)
            .map_err(|e| GuestError::Trap(e.to_string()))
    }

    /// Advances the computation by one tick.
    pub fn step(&mut self) -> Result<(), GuestError> {
        self.refuel()?;
        match self
            .step
            .call(&mut self.store, ())
            .map_err(|e| call_error(&e))?
        {
            0 => Ok(()),
            code => Err(GuestError::Guest(code)),
        }
    }

    /// The computation's state, as its State Update Interface captures it.
    pub fn capture(&mut self) -> Result<Vec<u8>, GuestError> {
        self.refuel()?;
        let packed = self
            .capture
            .call(&mut self.store, ())
            .map_err(|e| call_error(&e))?;
        self.read(packed, self.limits.max_state)
    }

    /// Replaces the computation's state with `state` (captured on any device).
    pub fn restore(&mut self, state: &[u8]) -> Result<(), GuestError> {
        if state.len() > self.limits.max_state {
            return Err(GuestError::Buffer("state over the limit"));
        }
        self.hand_over(self.restore_buffer, self.restore, state)
    }

    /// Whether the guest takes input lines.
    pub fn takes_input(&self) -> bool {
        self.input.is_some()
    }

    /// Hands the guest one input line.
    pub fn input(&mut self, line: &[u8]) -> Result<(), GuestError> {
        let (buffer, input) = self.input.ok_or(GuestError::NoInput)?;
        if line.len() > self.limits.max_input {
            return Err(GuestError::Buffer("input line over the limit"));
        }
        self.hand_over(buffer, input, line)
    }

    /// Asks `buffer` for room for `bytes`, writes them there and calls `take` on them.
    fn hand_over(
        &mut self,
        buffer: TypedFunc<i32, i32>,
        take: TypedFunc<i32, i32>,
        bytes: &[u8],
    ) -> Result<(), GuestError> {
        self.refuel()?;
        let len = bytes.len() as i32;
        let ptr = buffer
            .call(&mut self.store, len)
            .map_err(|e| call_error(&e))?;
        if ptr < 0 {
            return Err(GuestError::Guest(ptr));
        }
        self.memory
            .write(&mut self.store, ptr as u32 as usize, bytes)
            .map_err(|_| GuestError::Buffer("guest buffer outside memory"))?;
        self.refuel()?;
        match take
            .call(&mut self.store, len)
            .map_err(|e| call_error(&e))?
        {
            0 => Ok(()),
            code => Err(GuestError::Guest(code)),
        }
    }

    /// A text frame showing the computation.
    pub fn render(&mut self) -> Result<String, GuestError> {
        self.refuel()?;
        let packed = self
            .render
            .call(&mut self.store, ())
            .map_err(|e| call_error(&e))?;
        let bytes = self.read(packed, self.limits.max_frame)?;
        String::from_utf8(bytes).map_err(|_| GuestError::Buffer("frame is not UTF-8"))
    }

    /// What the guest logged during the last call.
    pub fn log(&self) -> &[String] {
        &self.store.data().log
    }

    /// Reads `(ptr << 32) | len` bytes of guest memory, refusing more than `max`.
    fn read(&self, packed: i64, max: usize) -> Result<Vec<u8>, GuestError> {
        let (ptr, len) = (
            (packed as u64 >> 32) as usize,
            (packed as u64 & 0xffff_ffff) as usize,
        );
        if len > max {
            return Err(GuestError::Buffer("buffer over the limit"));
        }
        let mut out = vec![0u8; len];
        self.memory
            .read(&self.store, ptr, &mut out)
            .map_err(|_| GuestError::Buffer("buffer outside memory"))?;
        Ok(out)
    }
}

fn call_error(e: &wasmi::Error) -> GuestError {
    match e.as_trap_code() {
        Some(TrapCode::OutOfFuel) => GuestError::OutOfFuel,
        _ => GuestError::Trap(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A counter: its state is an i64 at address 0; restores go through address 16.
    const COUNTER: &str = r#"
        (module
          (import "pcx" "log" (func $log (param i32 i32)))
          (memory (export "memory") 1)
          (data (i32.const 64) "counter")
          (func (export "pcx_step") (result i32)
            (i64.store (i32.const 0) (i64.add (i64.load (i32.const 0)) (i64.const 1)))
            (call $log (i32.const 64) (i32.const 7))
            (i32.const 0))
          (func (export "pcx_capture") (result i64) (i64.const 8))
          (func (export "pcx_restore_buffer") (param i32) (result i32)
            (if (result i32) (i32.eq (local.get 0) (i32.const 8)) (then (i32.const 16)) (else (i32.const -1))))
          (func (export "pcx_restore") (param i32) (result i32)
            (i64.store (i32.const 0) (i64.load (i32.const 16)))
            (i32.const 0))
          (func (export "pcx_render") (result i64) (i64.const 0x4000000007)))
    "#;

    fn counter() -> Guest {
        Guest::load(&wat::parse_str(COUNTER).unwrap(), GuestLimits::default()).unwrap()
    }

    /// The counter with `pcx_step` replaced.
    fn with_step(step: &str) -> Vec<u8> {
        let start = COUNTER.find("(func (export \"pcx_step\")").unwrap();
        let end = COUNTER.find("(func (export \"pcx_capture\")").unwrap();
        wat::parse_str(format!("{}{step}{}", &COUNTER[..start], &COUNTER[end..])).unwrap()
    }

    #[test]
    fn state_moves_between_instances() {
        let mut a = counter();
        for _ in 0..5 {
            a.step().unwrap();
        }
        assert_eq!(a.log(), ["counter"]);
        let state = a.capture().unwrap();
        assert_eq!(state, 5u64.to_le_bytes());
        assert_eq!(a.render().unwrap(), "counter");
        let mut b = counter();
        b.restore(&state).unwrap();
        b.step().unwrap();
        assert_eq!(b.capture().unwrap(), 6u64.to_le_bytes());
        assert!(matches!(b.restore(&[1, 2, 3]), Err(GuestError::Guest(-1))));
    }

    #[test]
    fn an_endless_loop_runs_out_of_fuel_and_the_host_carries_on() {
        let wasm =
            with_step(r#"(func (export "pcx_step") (result i32) (loop (br 0)) (i32.const 0))"#);
        let mut g = Guest::load(
            &wasm,
            GuestLimits {
                fuel_per_call: 100_000,
                ..GuestLimits::default()
            },
        )
        .unwrap();
        assert!(matches!(g.step(), Err(GuestError::OutOfFuel)));
        // Fuel is per call: the state can still be captured.
        assert_eq!(g.capture().unwrap(), 0u64.to_le_bytes());
    }

    #[test]
    fn host_stack_use_does_not_grow_with_the_work_a_guest_does() {
        // The full default fuel of an endless loop, on a small stack: the interpreter
        // dispatches in a loop, so no guest can exhaust the device's stack.
        let wasm =
            with_step(r#"(func (export "pcx_step") (result i32) (loop (br 0)) (i32.const 0))"#);
        let outcome = std::thread::Builder::new()
            .stack_size(512 * 1024)
            .spawn(move || {
                let mut g = Guest::load(&wasm, GuestLimits::default()).unwrap();
                matches!(g.step(), Err(GuestError::OutOfFuel))
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(outcome);
    }

    #[test]
    fn memory_growth_stops_at_the_limit() {
        let wasm = with_step(
            r#"(func (export "pcx_step") (result i32) (loop (drop (memory.grow (i32.const 1))) (br 0)) (i32.const 0))"#,
        );
        let mut g = Guest::load(
            &wasm,
            GuestLimits {
                max_memory: 4 * 65_536,
                ..GuestLimits::default()
            },
        )
        .unwrap();
        assert!(matches!(g.step(), Err(GuestError::Trap(_))));
        let too_big = wat::parse_str(COUNTER.replace(
            "(memory (export \"memory\") 1)",
            "(memory (export \"memory\") 300)",
        ))
        .unwrap();
        assert!(Guest::load(
            &too_big,
            GuestLimits {
                max_memory: 4 * 65_536,
                ..GuestLimits::default()
            }
        )
        .is_err());
    }

    #[test]
    fn input_goes_only_to_a_guest_that_takes_it() {
        // The counter adds each line's length to its count.
        let with_input = COUNTER.replace(
            "(func (export \"pcx_render\")",
            r#"(func (export "pcx_input_buffer") (param i32) (result i32)
                 (if (result i32) (i32.le_u (local.get 0) (i32.const 32)) (then (i32.const 32)) (else (i32.const -2))))
               (func (export "pcx_input") (param i32) (result i32)
                 (i64.store (i32.const 0) (i64.add (i64.load (i32.const 0)) (i64.extend_i32_u (local.get 0))))
                 (i32.const 0))
               (func (export "pcx_render")"#,
        );
        let mut g = Guest::load(
            &wat::parse_str(&with_input).unwrap(),
            GuestLimits::default(),
        )
        .unwrap();
        assert!(g.takes_input());
        g.input(b"hello").unwrap();
        assert_eq!(g.capture().unwrap(), 5u64.to_le_bytes());
        assert!(matches!(g.input(&[b'x'; 40]), Err(GuestError::Guest(-2))));
        let limits = GuestLimits {
            max_input: 4,
            ..GuestLimits::default()
        };
        let mut small = Guest::load(&wat::parse_str(&with_input).unwrap(), limits).unwrap();
        assert!(matches!(small.input(b"hello"), Err(GuestError::Buffer(_))));
        assert_eq!(g.capture().unwrap(), 5u64.to_le_bytes());

        let mut plain = counter();
        assert!(!plain.takes_input());
        assert!(matches!(plain.input(b"hello"), Err(GuestError::NoInput)));
        // Half of the pair is a broken module.
        let half = with_input.replace("(export \"pcx_input\")", "");
        assert!(matches!(
            Guest::load(&wat::parse_str(&half).unwrap(), GuestLimits::default()),
            Err(GuestError::Missing("pcx_input"))
        ));
    }

    #[test]
    fn only_the_allowed_import_links() {
        let wasm = wat::parse_str(
            COUNTER.replace("(import \"pcx\" \"log\"", "(import \"wasi\" \"fd_write\""),
        )
        .unwrap();
        assert!(
            matches!(Guest::load(&wasm, GuestLimits::default()), Err(GuestError::Import(name)) if name == "wasi.fd_write")
        );
        assert!(matches!(
            Guest::load(b"\0asm not really", GuestLimits::default()),
            Err(GuestError::Invalid(_))
        ));
        let missing = wat::parse_str("(module (memory (export \"memory\") 1))").unwrap();
        assert!(matches!(
            Guest::load(&missing, GuestLimits::default()),
            Err(GuestError::Missing("pcx_step"))
        ));
    }

    #[test]
    fn bad_buffers_from_the_guest_are_refused() {
        let wasm = wat::parse_str(COUNTER.replace(
            "(func (export \"pcx_capture\") (result i64) (i64.const 8))",
            "(func (export \"pcx_capture\") (result i64) (i64.const 0x0000fff000000100))",
        ))
        .unwrap();
        let mut g = Guest::load(&wasm, GuestLimits::default()).unwrap();
        assert!(matches!(g.capture(), Err(GuestError::Buffer(_))));
        let huge = wat::parse_str(COUNTER.replace(
            "(func (export \"pcx_capture\") (result i64) (i64.const 8))",
            "(func (export \"pcx_capture\") (result i64) (i64.const 0x7fffffff))",
        ))
        .unwrap();
        let mut g = Guest::load(&huge, GuestLimits::default()).unwrap();
        assert!(matches!(
            g.capture(),
            Err(GuestError::Buffer("buffer over the limit"))
        ));
    }

    #[test]
    fn modules_built_to_attack_the_host_are_refused_at_load() {
        // Code at instantiation, outside any call's budget.
        let memory = "(memory (export \"memory\") 1)";
        let start = COUNTER.replacen(memory, &format!("{memory} (func $s) (start $s)"), 1);
        let start = wat::parse_str(start).unwrap();
        assert!(matches!(
            Guest::load(&start, GuestLimits::default()),
            Err(GuestError::Invalid(_))
        ));
        // Past wasmi's strict limits: a function of 33 parameters.
        let params = COUNTER.replacen(
            memory,
            &format!("{memory} (func {})", "(param i32) ".repeat(33)),
            1,
        );
        let params = wat::parse_str(params).unwrap();
        assert!(matches!(
            Guest::load(&params, GuestLimits::default()),
            Err(GuestError::Invalid(_))
        ));
    }

    #[test]
    fn unbounded_recursion_traps_and_the_host_carries_on() {
        let wasm = with_step(
            r#"(func $down (param i32) (result i32) (call $down (local.get 0)))
               (func (export "pcx_step") (result i32) (call $down (i32.const 0)))"#,
        );
        let mut g = Guest::load(&wasm, GuestLimits::default()).unwrap();
        assert!(matches!(g.step(), Err(GuestError::Trap(_))));
        assert_eq!(g.capture().unwrap(), 0u64.to_le_bytes());
    }
}
