//! How long a device waits before it tries to connect again.

use std::time::Duration;

/// The wait after the first failed attempt, before jitter.
pub const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The longest wait between attempts, before jitter.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Exponential backoff with ±50% jitter: waits from [`BACKOFF_MIN`], doubling after every
/// failed attempt up to [`BACKOFF_MAX`], each scaled by a factor in [0.5, 1.5) so that
/// devices cut off together do not come back together.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    jitter: u64,
}

impl Backoff {
    /// A backoff whose jitter follows from `seed`.
    pub fn new(seed: u64) -> Self {
        Backoff {
            next: BACKOFF_MIN,
            jitter: seed | 1,
        }
    }

    /// Starts again from [`BACKOFF_MIN`]: the last connection proved useful.
    pub fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }

    /// How long to wait after this failure.
    pub fn wait(&mut self) -> Duration {
        // xorshift64: never zero from a non-zero state.
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let factor = 0.5 + (self.jitter % 1000) as f64 / 1000.0;
        let wait = self.next.mul_f64(factor);
        self.next = (self.next * 2).min(BACKOFF_MAX);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_maximum_within_half_either_way() {
        let mut b = Backoff::new(42);
        let mut base = BACKOFF_MIN;
        for _ in 0..20 {
            let wait = b.wait();
            assert!(
                wait >= base / 2 && wait < base * 3 / 2,
                "{wait:?} for {base:?}"
            );
            base = (base * 2).min(BACKOFF_MAX);
        }
    }

    #[test]
    fn different_seeds_spread_the_waits() {
        let waits: Vec<Duration> = (1..=8).map(|s| Backoff::new(s * 7919).wait()).collect();
        let distinct = waits
            .iter()
            .filter(|w| waits.iter().filter(|v| v == w).count() == 1)
            .count();
        assert!(distinct >= 6, "{waits:?}");
    }
}
