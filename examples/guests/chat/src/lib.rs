//! Chat as a PCXSES computation: it records the lines it is given (the SUI ABI's optional
//! input pair) and its state is those lines — the most recent [`HISTORY`] of them, each at
//! most [`LINE_MAX`] bytes — with the number of lines received and the tick. Built for
//! `wasm32-unknown-unknown`, the crate exports the SUI ABI of `docs/SUI-ABI.md`; a device
//! that takes it over shows the same conversation and records on.
#![deny(unsafe_code)]
#![deny(missing_docs)]

use std::collections::VecDeque;

use pcxses_guest_sui::{Computation, Input};

/// Lines kept.
pub const HISTORY: usize = 12;
/// Longest line kept, bytes; longer lines are cut at a character boundary.
pub const LINE_MAX: usize = 96;
/// Version byte of the encoded state.
const STATE_VERSION: u8 = 1;
/// The longest encoded state.
pub const MAX_STATE: usize = 1 + 4 + 4 + 1 + HISTORY * (1 + LINE_MAX);

/// The conversation so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chat {
    tick: u32,
    received: u32,
    lines: VecDeque<String>,
}

impl Chat {
    /// Ticks stepped.
    pub fn tick(&self) -> u32 {
        self.tick
    }

    /// Lines received in all, including those no longer kept.
    pub fn received(&self) -> u32 {
        self.received
    }

    /// The lines kept, oldest first.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(String::as_str)
    }

    /// Records `line`: its line ending is dropped, control characters become spaces, and
    /// it is cut to [`LINE_MAX`] bytes. The oldest line goes when [`HISTORY`] are kept.
    pub fn push(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let mut kept = String::new();
        for c in text.trim_end_matches(['\r', '\n']).chars() {
            let c = if c.is_control() { ' ' } else { c };
            if kept.len() + c.len_utf8() > LINE_MAX {
                break;
            }
            kept.push(c);
        }
        if self.lines.len() == HISTORY {
            self.lines.pop_front();
        }
        self.lines.push_back(kept);
        self.received = self.received.wrapping_add(1);
    }
}

impl Computation for Chat {
    const MAX_STATE: usize = MAX_STATE;

    fn step(&mut self) {
        self.tick = self.tick.wrapping_add(1);
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(STATE_VERSION);
        out.extend_from_slice(&self.tick.to_le_bytes());
        out.extend_from_slice(&self.received.to_le_bytes());
        out.push(self.lines.len() as u8);
        for line in &self.lines {
            out.push(line.len() as u8);
            out.extend_from_slice(line.as_bytes());
        }
    }

    /// Strict: exactly one encoding is accepted for each conversation.
    fn decode(bytes: &[u8]) -> Option<Self> {
        let (&version, rest) = bytes.split_first()?;
        let word =
            |b: &[u8]| -> Option<u32> { Some(u32::from_le_bytes(b.get(..4)?.try_into().ok()?)) };
        let tick = word(rest)?;
        let received = word(rest.get(4..)?)?;
        let (&n, mut rest) = rest.get(8..)?.split_first()?;
        if version != STATE_VERSION || usize::from(n) > HISTORY || received < u32::from(n) {
            return None;
        }
        let mut lines = VecDeque::with_capacity(n.into());
        for _ in 0..n {
            let (&len, tail) = rest.split_first()?;
            let len = usize::from(len);
            if len > LINE_MAX {
                return None;
            }
            let text = std::str::from_utf8(tail.get(..len)?).ok()?;
            if text.chars().any(char::is_control) {
                return None;
            }
            lines.push_back(text.to_string());
            rest = &tail[len..];
        }
        rest.is_empty().then_some(Chat {
            tick,
            received,
            lines,
        })
    }

    fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(out, "chat · {} lines · tick {}", self.received, self.tick);
        let first = self.received as usize + 1 - self.lines.len();
        for (i, line) in self.lines.iter().enumerate() {
            let _ = writeln!(out, "  #{:<4} {line}", first + i);
        }
    }
}

impl Input for Chat {
    /// Longer lines are taken and cut; this bounds what the host may write.
    const MAX_INPUT: usize = 1024;

    fn input(&mut self, line: &[u8]) {
        self.push(line);
    }
}

pcxses_guest_sui::export_sui!(Chat, input);

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(lines: usize) -> Chat {
        let mut c = Chat::default();
        for i in 0..lines {
            c.step();
            c.push(format!("line {i}\n").as_bytes());
        }
        c
    }

    fn encoded(c: &Chat) -> Vec<u8> {
        let mut out = Vec::new();
        c.encode(&mut out);
        out
    }

    #[test]
    fn keeps_the_latest_lines_and_round_trips() {
        let c = chat(20);
        assert_eq!(c.received(), 20);
        assert_eq!(c.lines().count(), HISTORY);
        assert_eq!(c.lines().next(), Some("line 8"));
        assert_eq!(c.lines().last(), Some("line 19"));
        assert_eq!(Chat::decode(&encoded(&c)), Some(c.clone()));
        let mut frame = String::new();
        c.render(&mut frame);
        assert!(frame.contains("#20   line 19"), "{frame}");
    }

    #[test]
    fn long_lines_are_cut_at_a_character_boundary_and_controls_blanked() {
        let mut c = Chat::default();
        c.push("é".repeat(100).as_bytes());
        c.push(b"a\tb\x1b[2J\r\n");
        let lines: Vec<&str> = c.lines().collect();
        assert_eq!(lines[0], "é".repeat(LINE_MAX / 2));
        assert_eq!(lines[1], "a b [2J");
        let full = chat(HISTORY);
        let mut long = Chat::default();
        for _ in 0..HISTORY {
            long.push(&[b'x'; 500]);
        }
        assert!(encoded(&long).len() <= MAX_STATE);
        assert!(encoded(&full).len() <= MAX_STATE);
    }

    #[test]
    fn anything_but_a_chat_state_is_refused() {
        let good = encoded(&chat(3));
        assert!(Chat::decode(&good).is_some());
        for cut in 0..good.len() {
            assert_eq!(Chat::decode(&good[..cut]), None, "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        let mut version = good.clone();
        version[0] = 2;
        let mut too_many = good.clone();
        too_many[9] = HISTORY as u8 + 1;
        let mut control = good.clone();
        control[11] = 0x07;
        for bad in [trailing, version, too_many, control] {
            assert_eq!(Chat::decode(&bad), None);
        }
    }
}
