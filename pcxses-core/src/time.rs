//! The crate's own clock type: microseconds from an epoch the caller chooses.

use core::ops::{Add, AddAssign};
use core::time::Duration;

/// A point in time, in microseconds since an epoch chosen by the caller.
///
/// The core never reads a clock: every input carries `now`. Instants never go on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The latest representable instant: "never".
    pub const MAX: Instant = Instant(u64::MAX);

    /// The instant `micros` microseconds after the epoch.
    pub const fn from_micros(micros: u64) -> Instant {
        Instant(micros)
    }

    /// The instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Instant {
        Instant(millis.saturating_mul(1000))
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Milliseconds since the epoch, rounded down.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1000
    }

    /// Time from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.micros_since(earlier))
    }

    /// Microseconds from `earlier` to `self`, or zero if `earlier` is later.
    pub(crate) const fn micros_since(self, earlier: Instant) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// The instant `micros` microseconds later, or [`Instant::MAX`] past it.
    pub(crate) const fn plus_micros(self, micros: u64) -> Instant {
        Instant(self.0.saturating_add(micros))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.plus_micros(micros(d))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

/// A machine's notion of now: never goes backwards.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Clock(Instant);

impl Clock {
    pub(crate) fn new(now: Instant) -> Clock {
        Clock(now)
    }

    /// The latest time seen.
    #[cfg(feature = "controller")]
    pub(crate) fn latest(&self) -> Instant {
        self.0
    }

    /// Advances to `now`, clamping time that goes backwards; returns the clamped now.
    pub(crate) fn advance(&mut self, now: Instant) -> Instant {
        if now > self.0 {
            self.0 = now;
        }
        self.0
    }
}

/// A duration in whole microseconds, rounded down, and `u64::MAX` for anything longer.
///
/// Machines convert their configured durations once and keep time in microseconds, the
/// unit of [`Instant`]: no 128-bit arithmetic, and no 64-bit division, which a 32-bit
/// microcontroller does in software.
pub(crate) const fn micros(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(d.subsec_micros() as u64)
}

/// Milliseconds from the wire as a duration.
pub(crate) fn ms(millis: u32) -> Duration {
    Duration::from_millis(u64::from(millis))
}

/// Milliseconds from the wire in microseconds.
pub(crate) const fn ms_micros(millis: u32) -> u64 {
    millis as u64 * 1000
}

/// A configured duration as the wire's milliseconds: rounded down to whole milliseconds,
/// and `u32::MAX` (about 49.7 days) for anything longer.
pub(crate) fn to_ms(d: Duration) -> u32 {
    let secs = u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    secs.saturating_mul(1000).saturating_add(d.subsec_millis())
}

/// Maps the host's monotonic clock to the crate's [`Instant`], for drivers on `std`.
#[cfg(feature = "std")]
#[derive(Clone, Copy, Debug)]
pub struct Epoch(std::time::Instant);

#[cfg(feature = "std")]
impl Epoch {
    /// An epoch starting now.
    pub fn new() -> Epoch {
        Epoch(std::time::Instant::now())
    }

    /// The current time as an [`Instant`].
    pub fn now(&self) -> Instant {
        self.instant(std::time::Instant::now())
    }

    /// A host instant as an [`Instant`] (the epoch if it is earlier).
    pub fn instant(&self, at: std::time::Instant) -> Instant {
        let micros = at.saturating_duration_since(self.0).as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// An [`Instant`] as a host instant, for arming a timer; `None` for [`Instant::MAX`]
    /// or a time too far away to represent.
    pub fn to_std(&self, at: Instant) -> Option<std::time::Instant> {
        if at == Instant::MAX {
            return None;
        }
        self.0.checked_add(Duration::from_micros(at.as_micros()))
    }

    /// How long from now until `deadline`, to arm a blocking socket's read timeout or a
    /// timer as it is: `None` for [`Instant::MAX`] (wait for bytes alone), otherwise at
    /// least one microsecond (a deadline already past is due at once;
    /// `set_read_timeout` refuses a zero duration).
    ///
    /// ```
    /// use pcxses_core::{Epoch, Instant};
    ///
    /// let epoch = Epoch::new();
    /// assert_eq!(epoch.timeout(Instant::MAX), None);
    /// assert!(epoch.timeout(Instant::from_micros(0)).is_some_and(|d| !d.is_zero()));
    /// ```
    pub fn timeout(&self, deadline: Instant) -> Option<Duration> {
        if deadline == Instant::MAX {
            return None;
        }
        let left = deadline.saturating_since(self.now());
        Some(left.max(Duration::from_micros(1)))
    }
}

/// A seed for a machine's PRNG from the operating system's randomness
/// ([`crate::DeviceConfig::seed`], [`crate::ControllerConfig::new`]): different on every
/// start. `None` if the system has none to give.
///
#[cfg_attr(
    not(feature = "controller"),
    doc = "[`crate::ControllerConfig::new`]: crate#cargo-features"
)]
#[cfg(feature = "std")]
pub fn os_seed() -> Option<u64> {
    getrandom::u64().ok()
}

#[cfg(feature = "std")]
impl Default for Epoch {
    fn default() -> Self {
        Epoch::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_down_and_saturate() {
        let cases = [
            Duration::ZERO,
            Duration::from_nanos(999),
            Duration::from_nanos(1_999),
            Duration::from_millis(1_500),
            Duration::new(4_294_967, 295_999_999),
            Duration::new(4_294_967, 296_000_000),
            Duration::from_secs(u64::from(u32::MAX)),
            Duration::from_micros(u64::MAX),
            Duration::from_micros(u64::MAX) + Duration::from_nanos(999),
            Duration::from_micros(u64::MAX) + Duration::from_micros(1),
            Duration::MAX,
        ];
        for d in cases {
            let exact = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            assert_eq!(micros(d), exact, "{d:?}");
            assert_eq!(
                to_ms(d),
                u32::try_from(d.as_millis()).unwrap_or(u32::MAX),
                "{d:?}"
            );
            assert_eq!(Instant(1) + d, Instant(exact.saturating_add(1)), "{d:?}");
        }
        assert_eq!(ms_micros(u32::MAX), u64::from(u32::MAX) * 1000);
        assert_eq!(ms(1_500), Duration::from_millis(1_500));
    }
}
