//! Warnings a peer can provoke, at most one a period.

use std::time::{Duration, Instant};

/// How often the adapters log a warning that a peer can provoke, at most.
pub const WARN_PERIOD: Duration = Duration::from_secs(5);

/// Lets one warning through per `period` and counts the ones it held back, so that a peer
/// cannot flood the log.
#[derive(Debug)]
pub struct Throttle {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    /// One warning per `period`.
    pub const fn new(period: Duration) -> Self {
        Throttle {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when a warning may be logged now, `n` being how many were held back
    /// since the last one; `None` (and one more held back) otherwise.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|last| now < last + self.period) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_period_and_the_rest_counted() {
        let mut t = Throttle::new(Duration::from_secs(1));
        let start = Instant::now();
        assert_eq!(t.allow(start), Some(0));
        for ms in 1..1000 {
            assert_eq!(t.allow(start + Duration::from_millis(ms)), None);
        }
        assert_eq!(t.allow(start + Duration::from_secs(1)), Some(999));
    }
}
