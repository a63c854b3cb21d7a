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
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(micros))
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

/// Milliseconds from the wire as a duration.
pub(crate) fn ms(millis: u32) -> Duration {
    Duration::from_millis(u64::from(millis))
}

/// A configured duration as the wire's milliseconds: rounded down to whole milliseconds,
/// and `u32::MAX` (about 49.7 days) for anything longer.
pub(crate) fn to_ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
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
