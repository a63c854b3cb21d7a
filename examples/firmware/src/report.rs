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
//! | `memory` | `heap_used`, `heap_recent_peak` (since the last check, a second ago), `heap_peak` (since boot), `stack_peak` (bytes), `frames`, `dropped`, `dropped_bytes` (the serial decoder's) |
//! | `provision_invalid` | `reason` (the firmware halts) |
//! | `panic` | `file`, `line` (the firmware halts) |
//!
//! The lines are written without `core::fmt`, which would cost the image several
//! kilobytes, and without the heap: through a buffer of [`LINE_BUFFER`] bytes beside the
//! console, written out whenever it fills, so that reporting does not change the heap it
//! reports on.

use pcxses_core::Instant;

/// Bytes of a line gathered before they are written to the console.
pub const LINE_BUFFER: usize = 256;

/// Where the lines go.
pub struct Report {
    #[cfg(feature = "semihosting")]
    out: Option<cortex_m_semihosting::hio::HostStream>,
    buf: [u8; LINE_BUFFER],
}

impl Report {
    /// The debugger's console, if there is one.
    pub fn open() -> Report {
        Report {
            #[cfg(feature = "semihosting")]
            out: cortex_m_semihosting::hio::hstdout().ok(),
            buf: [0; LINE_BUFFER],
        }
    }

    /// Writes the event `name` at `at`, its fields added by `fields`.
    #[cfg_attr(not(feature = "semihosting"), allow(unused_variables))]
    pub fn event(&mut self, name: &str, at: Instant, fields: impl FnOnce(&mut Line<'_>)) {
        #[cfg(feature = "semihosting")]
        if let Some(out) = self.out.as_mut() {
            let mut line = Line {
                out,
                buf: &mut self.buf,
                len: 0,
                first: true,
            };
            line.push(b"{");
            line.str("event", name);
            fields(&mut line);
            line.u64("at_ms", at.as_millis());
            line.push(b"}\n");
            line.flush();
        }
    }
}

/// The fields of one event line, on their way to the console.
pub struct Line<'r> {
    #[cfg(feature = "semihosting")]
    out: &'r mut cortex_m_semihosting::hio::HostStream,
    buf: &'r mut [u8; LINE_BUFFER],
    len: usize,
    /// No field written yet.
    first: bool,
}

impl Line<'_> {
    fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.len == LINE_BUFFER {
                self.flush();
            }
            let n = bytes.len().min(LINE_BUFFER - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
        }
    }

    fn flush(&mut self) {
        #[cfg(feature = "semihosting")]
        let _ = self.out.write_all(&self.buf[..self.len]);
        self.len = 0;
    }

    fn key(&mut self, key: &str) {
        if !core::mem::take(&mut self.first) {
            self.push(b",");
        }
        self.quote(key);
        self.push(b":");
    }

    /// A string field.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        self.quote(value);
        self
    }

    /// A number field.
    pub fn u64(&mut self, key: &str, mut n: u64) -> &mut Self {
        self.key(key);
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
        self.push(&digits[at..]);
        self
    }

    /// Bytes, as a hex string.
    pub fn hex(&mut self, key: &str, bytes: &[u8]) -> &mut Self {
        self.key(key);
        self.push(b"\"");
        for &b in bytes {
            self.push(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
        self.push(b"\"");
        self
    }

    /// A counter's state as its count, when it is one (8 bytes, little-endian).
    pub fn count(&mut self, state: &[u8]) -> &mut Self {
        if let Ok(count) = <[u8; 8]>::try_from(state) {
            self.u64("count", u64::from_le_bytes(count));
        }
        self
    }

    /// A list of strings.
    pub fn strs<'s>(&mut self, key: &str, values: impl Iterator<Item = &'s str>) -> &mut Self {
        self.key(key);
        self.push(b"[");
        for (i, v) in values.enumerate() {
            if i > 0 {
                self.push(b",");
            }
            self.quote(v);
        }
        self.push(b"]");
        self
    }

    /// `s` as a JSON string.
    fn quote(&mut self, s: &str) {
        self.push(b"\"");
        for &b in s.as_bytes() {
            match b {
                b'"' | b'\\' => self.push(&[b'\\', b]),
                0..0x20 => self.push(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 15)],
                ]),
                _ => self.push(&[b]),
            }
        }
        self.push(b"\"");
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";
