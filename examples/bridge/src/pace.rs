//! Pacing a line to its baud rate: bytes take the time they would on the wire.

use std::time::{Duration, Instant};

/// Bits on the wire per byte: a start bit, eight data bits and a stop bit.
const BITS_PER_BYTE: u64 = 10;

/// When a line of some baud rate is free again, for bytes put on it one batch at a time.
#[derive(Debug)]
pub struct Pace {
    /// Nanoseconds one byte takes.
    byte_ns: u64,
    /// When the bytes already on the line have gone.
    free_at: Instant,
}

impl Pace {
    /// A line of `baud` bits per second (at least 1), free now.
    pub fn new(baud: u32) -> Pace {
        Pace {
            byte_ns: BITS_PER_BYTE * 1_000_000_000 / u64::from(baud.max(1)),
            free_at: Instant::now(),
        }
    }

    /// Puts `bytes` on the line after those already on it: how long to wait from now until
    /// they have gone.
    pub fn send(&mut self, bytes: usize) -> Duration {
        let now = Instant::now();
        let took = Duration::from_nanos(self.byte_ns.saturating_mul(bytes as u64));
        self.free_at = self.free_at.max(now) + took;
        self.free_at - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_queue_behind_each_other_at_ten_bits_each() {
        let mut pace = Pace::new(115_200);
        // 1,152 bytes are 11,520 bits: 100 ms, and the next 1,152 wait behind them.
        let first = pace.send(1_152);
        let second = pace.send(1_152);
        assert!(first <= Duration::from_millis(100) && first > Duration::from_millis(99));
        assert!(second > Duration::from_millis(199) && second <= Duration::from_millis(200));
    }
}
