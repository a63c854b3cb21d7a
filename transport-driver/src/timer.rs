//! Waiting for a machine's next timeout.

use pcxses_core::{Epoch, Instant};
use smol::Timer;

/// Completes at `at` on `epoch`'s clock; never, for [`Instant::MAX`].
pub async fn until(epoch: Epoch, at: Instant) {
    match epoch.to_std(at) {
        Some(at) => Timer::at(at).await,
        None => Timer::never().await,
    };
}
