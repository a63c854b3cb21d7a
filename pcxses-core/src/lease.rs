//! The fence lease shared between the thread that drives a [`crate::Device`] and the
//! threads that step its computations.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::time::Instant;

/// The device's fence lease, published by its driver after every input and read by the
/// application before every step of a computation.
///
/// A computation thread cannot ask the [`crate::Device`] itself when the machine runs on
/// another thread; after a gap in the process's execution (a freeze, a swap storm) it may
/// wake before the driver has judged the lease. Checking this cell with the time of the
/// step closes that gap: a step at or after the published instant is not taken.
///
/// ```
/// use pcxses_core::{Instant, SharedLease};
///
/// let lease = SharedLease::default();
/// assert!(!lease.permits(Instant::from_millis(1)));
/// lease.publish(Some(Instant::from_millis(500)));
/// assert!(lease.permits(Instant::from_millis(499)));
/// assert!(!lease.permits(Instant::from_millis(500)));
/// ```
#[derive(Clone, Debug, Default)]
pub struct SharedLease(Arc<AtomicU64>);

impl SharedLease {
    /// Publishes [`crate::Device::lease_until`]; `None` permits nothing.
    pub fn publish(&self, until: Option<Instant>) {
        let micros = until.map_or(0, Instant::as_micros);
        self.0.store(micros, Ordering::Release);
    }

    /// Whether a computation may take a step at `now`.
    pub fn permits(&self, now: Instant) -> bool {
        now.as_micros() < self.0.load(Ordering::Acquire)
    }
}
