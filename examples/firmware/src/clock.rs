//! The monotonic clock: SysTick on the core's 1 MHz reference clock, interrupting every
//! millisecond. The interrupt counts milliseconds (and wakes the core from `wfi`); the
//! counter gives the microseconds between them.

use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

use cortex_m::peripheral::{syst::SystClkSource, SYST};
use cortex_m_rt::exception;
use pcxses_core::Instant;

/// Reference-clock ticks in a millisecond (the MPS2 boards' SysTick reference is 1 MHz).
const TICKS_PER_MS: u32 = 1_000;

/// Milliseconds since the clock started, modulo 2^32; only the SysTick handler writes it.
static MILLIS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    // The only writer: a load and a store suffice, also on cores without atomic adds.
    MILLIS.store(MILLIS.load(Relaxed).wrapping_add(1), Relaxed);
}

/// The time since boot.
pub struct Clock {
    /// The milliseconds of the last reading, and the wraps of the count seen.
    last_ms: u32,
    wraps: u64,
}

impl Clock {
    /// Starts SysTick: a millisecond interrupt on the reference clock.
    pub fn start(mut syst: SYST) -> Clock {
        syst.set_clock_source(SystClkSource::External);
        syst.set_reload(TICKS_PER_MS - 1);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        Clock {
            last_ms: 0,
            wraps: 0,
        }
    }

    /// Now. Call at least once every 49 days.
    pub fn now(&mut self) -> Instant {
        let (ms, into) = loop {
            let ms = MILLIS.load(Relaxed);
            let into = TICKS_PER_MS - 1 - SYST::get_current().min(TICKS_PER_MS - 1);
            // The interrupt preempts this loop: a millisecond that ended between the two
            // reads shows as a changed count, and the pair is read again.
            if MILLIS.load(Relaxed) == ms {
                break (ms, into);
            }
        };
        if ms < self.last_ms {
            self.wraps += 1;
        }
        self.last_ms = ms;
        let millis = (self.wraps << 32) | u64::from(ms);
        Instant::from_micros(millis * 1_000 + u64::from(into))
    }
}
