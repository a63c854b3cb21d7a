#![cfg_attr(not(feature = "semihosting"), allow(dead_code))]
//! Event lines: one JSON object per line, in the form the `pcxses-device` program prints
//! (`{"event": "install", "computation": ..., "at_ms": ...}`), written to the debugger's
//! console through semihosting (QEMU's standard output), never to the UART, which carries
//! only frames. Built without the `semihosting` feature, the firmware reports nothing and
//! the lines are never built.
//!
//! The events, each with `at_ms` (the board's clock):
//!
//! | event | fields |
//! | --- | --- |
//! | `joined` | `session`, `run` (the computations started) |
//! | `state_stored` | `computation`, `version`, `state` (hex, if still remembered), `count` (a counter's) |
//! | `install` | `computation`, `replaces`, `lkgs` (hex), `count`, `lkgs_bytes`, `lkgs_version`, `code_bytes`, `refused` (why it did not start, if it did not) |
//! | `stop` | `computation`, `reason` (`replaced`, `fenced`, `session_lost`, `left`, `dismissed`, `cancelled`) |
//! | `morph_refused` | `morph` |
//! | `rejected` | |
//! | `guest_failed` | `computation` (it ran out of fuel or trapped, and was stopped) |
//! | `frame` | `computation`, `text` (a WebAssembly computation's frame) |
//! | `memory` | `heap_used`, `heap_peak`, `stack_peak` (bytes), `frames`, `dropped`, `dropped_bytes` (the serial decoder's) |
//! | `provision_invalid` | `reason` (the firmware halts) |
//! | `panic` | `file`, `line` (the firmware halts) |
//!
//! The lines are written without `core::fmt`, which would cost the image several
//! kilobytes.

use alloc::vec::Vec;

use pcxses_core::Instant;

/// Where the lines go.
pub struct Report {
    #[cfg(feature = "semihosting")]
    out: Option<cortex_m_semihosting::hio::HostStream>,
}

impl Report {
    /// The debugger's console, if there is one.
    pub fn open() -> Report {
        Report {
            #[cfg(feature = "semihosting")]
            out: cortex_m_semihosting::hio::hstdout().ok(),
        }
    }

    /// Writes the event `name` at `at`, its fields added by `fields`.
    #[cfg_attr(not(feature = "semihosting"), allow(unused_variables))]
    pub fn event(&mut self, name: &str, at: Instant, fields: impl FnOnce(&mut Line)) {
        #[cfg(feature = "semihosting")]
        if let Some(out) = self.out.as_mut() {
            let mut line = Line(Vec::with_capacity(128));
            line.0.extend_from_slice(b"{");
            line.str("event", name);
            fields(&mut line);
            line.u64("at_ms", at.as_millis());
            line.0.extend_from_slice(b"}\n");
            let _ = out.write_all(&line.0);
        }
    }
}

/// The fields of one event line.
pub struct Line(Vec<u8>);

impl Line {
    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if self.0.len() > 1 {
            self.0.push(b',');
        }
        quote(&mut self.0, key);
        self.0.push(b':');
        &mut self.0
    }

    /// A string field.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Line {
        quote(self.key(key), value);
        self
    }

    /// A number field.
    pub fn u64(&mut self, key: &str, value: u64) -> &mut Line {
        decimal(self.key(key), value);
        self
    }

    /// Bytes, as a hex string.
    pub fn hex(&mut self, key: &str, bytes: &[u8]) -> &mut Line {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let out = self.key(key);
        out.push(b'"');
        for b in bytes {
            out.extend_from_slice(&[DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]]);
        }
        out.push(b'"');
        self
    }

    /// A counter's state as its count, when it is one (8 bytes, little-endian).
    pub fn count(&mut self, state: &[u8]) -> &mut Line {
        if let Ok(count) = <[u8; 8]>::try_from(state) {
            self.u64("count", u64::from_le_bytes(count));
        }
        self
    }

    /// A list of strings.
    pub fn strs<'s>(&mut self, key: &str, values: impl Iterator<Item = &'s str>) -> &mut Line {
        let out = self.key(key);
        out.push(b'[');
        for (i, v) in values.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            quote(out, v);
        }
        out.push(b']');
        self
    }
}

/// `s` as a JSON string.
fn quote(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            0..0x20 => {
                out.extend_from_slice(b"\\u00");
                out.extend_from_slice(&[b'0' + (b >> 4), b"0123456789abcdef"[usize::from(b & 15)]]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// `n` in decimal.
fn decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}
