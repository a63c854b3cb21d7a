//! The guest side of the SUI ABI (`docs/SUI-ABI.md`).
//!
//! A computation implements [`Computation`] (and [`Input`] if it reads input lines);
//! [`export_sui!`] then gives a crate built for `wasm32-unknown-unknown` the ABI's exports,
//! backed by one [`Host`] that keeps the computation and the buffers the host reads and
//! writes.
//!
//! ```
//! use pcxses_guest_sui::Computation;
//!
//! #[derive(Default)]
//! struct Ticks(u32);
//!
//! impl Computation for Ticks {
//!     const MAX_STATE: usize = 4;
//!     fn step(&mut self) {
//!         self.0 += 1;
//!     }
//!     fn encode(&self, out: &mut Vec<u8>) {
//!         out.extend_from_slice(&self.0.to_le_bytes());
//!     }
//!     fn decode(bytes: &[u8]) -> Option<Self> {
//!         Some(Ticks(u32::from_le_bytes(bytes.try_into().ok()?)))
//!     }
//!     fn render(&self, out: &mut String) {
//!         out.push_str(&self.0.to_string());
//!     }
//! }
//!
//! pcxses_guest_sui::export_sui!(Ticks);
//! ```
#![deny(unsafe_code)]
#![deny(missing_docs)]

/// A computation that can be shipped: it steps, captures its state, is restored from a
/// state captured on any device, and renders itself as text. It starts from `default()`.
pub trait Computation: Default {
    /// The longest state [`Computation::decode`] accepts, bytes.
    const MAX_STATE: usize;
    /// Advances by one tick.
    fn step(&mut self);
    /// Appends the state to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// The computation in `bytes`, or `None` if they are not a state of it.
    fn decode(bytes: &[u8]) -> Option<Self>;
    /// Appends a UTF-8 text frame to `out`.
    fn render(&self, out: &mut String);
}

/// A computation that reads input lines (the optional `pcx_input` pair of the ABI).
pub trait Input: Computation {
    /// The longest line accepted, bytes.
    const MAX_INPUT: usize;
    /// Takes one line (without its line ending).
    fn input(&mut self, line: &[u8]);
}

/// The guest's side of the ABI calls: the computation and the buffers shared with the
/// host. Addresses are 32-bit, as on `wasm32`.
#[derive(Default)]
pub struct Host<C> {
    computation: C,
    buffer: Vec<u8>,
    frame: String,
}

/// `(address << 32) | length`, the ABI's packed buffer.
fn pack(bytes: &[u8]) -> i64 {
    ((bytes.as_ptr() as usize as i64) << 32) | bytes.len() as i64
}

impl<C: Computation> Host<C> {
    /// `pcx_step`.
    pub fn step(&mut self) -> i32 {
        self.computation.step();
        0
    }

    /// `pcx_capture`.
    pub fn capture(&mut self) -> i64 {
        self.buffer.clear();
        self.computation.encode(&mut self.buffer);
        pack(&self.buffer)
    }

    /// `pcx_restore_buffer`: `len` writable bytes, or -1 for a length over the limit.
    pub fn restore_buffer(&mut self, len: i32) -> i32 {
        self.buffer_for(len, C::MAX_STATE)
    }

    /// `pcx_restore`: 0 if the `len` bytes written are a state of the computation, else 1
    /// (and the computation is left as it was).
    pub fn restore(&mut self, len: i32) -> i32 {
        match self.written(len).and_then(C::decode) {
            Some(c) => {
                self.computation = c;
                0
            }
            None => 1,
        }
    }

    /// `pcx_render`.
    pub fn render(&mut self) -> i64 {
        self.frame.clear();
        self.computation.render(&mut self.frame);
        pack(self.frame.as_bytes())
    }

    fn buffer_for(&mut self, len: i32, max: usize) -> i32 {
        match usize::try_from(len) {
            Ok(len) if len <= max => {
                self.buffer.clear();
                self.buffer.resize(len, 0);
                self.buffer.as_ptr() as usize as i32
            }
            _ => -1,
        }
    }

    fn written(&self, len: i32) -> Option<&[u8]> {
        self.buffer.get(..usize::try_from(len).ok()?)
    }
}

impl<C: Input> Host<C> {
    /// `pcx_input_buffer`: `len` writable bytes, or -1 for a line over the limit.
    pub fn input_buffer(&mut self, len: i32) -> i32 {
        self.buffer_for(len, C::MAX_INPUT)
    }

    /// `pcx_input`: hands the `len` bytes written to the computation.
    pub fn input(&mut self, len: i32) -> i32 {
        match self.written(len) {
            Some(line) => {
                let line = line.to_vec();
                self.computation.input(&line);
                0
            }
            None => 1,
        }
    }
}

/// Exports the SUI ABI for a [`Computation`] when built for `wasm32`: `export_sui!(Type)`,
/// or `export_sui!(Type, input)` for one that also implements [`Input`].
#[macro_export]
macro_rules! export_sui {
    ($computation:ty) => {
        $crate::export_sui!(@exports $computation, {});
    };
    ($computation:ty, input) => {
        $crate::export_sui!(@exports $computation, {
            #[allow(unsafe_code)]
            #[no_mangle]
            pub extern "C" fn pcx_input_buffer(len: i32) -> i32 {
                with(|h| h.input_buffer(len))
            }

            #[allow(unsafe_code)]
            #[no_mangle]
            pub extern "C" fn pcx_input(len: i32) -> i32 {
                with(|h| h.input(len))
            }
        });
    };
    (@exports $computation:ty, { $($extra:item)* }) => {
        #[cfg(target_arch = "wasm32")]
        mod sui_exports {
            #[allow(unused_imports)]
            use super::*;

            static HOST: ::std::sync::Mutex<Option<$crate::Host<$computation>>> =
                ::std::sync::Mutex::new(None);

            fn with<R>(f: impl FnOnce(&mut $crate::Host<$computation>) -> R) -> R {
                let mut guard = HOST.lock().unwrap_or_else(|e| e.into_inner());
                f(guard.get_or_insert_with(Default::default))
            }

            #[allow(unsafe_code)]
            #[no_mangle]
            pub extern "C" fn pcx_step() -> i32 {
                with(|h| h.step())
            }

            #[allow(unsafe_code)]
            #[no_mangle]
            pub extern "C" fn pcx_capture() -> i64 {
                with(|h| h.capture())
            }

            #[allow(unsafe_code)]
            #[no_mangle]
            pub extern "C" fn pcx_restore_buffer(len: i32) -> i32 {
                with(|h| h.restore_buffer(len))
            }

            #[allow(unsafe_code)]
            #[no_mangle]
            pub extern "C" fn pcx_restore(len: i32) -> i32 {
                with(|h| h.restore(len))
            }

            #[allow(unsafe_code)]
            #[no_mangle]
            pub extern "C" fn pcx_render() -> i64 {
                with(|h| h.render())
            }

            $($extra)*
        }
    };
}
