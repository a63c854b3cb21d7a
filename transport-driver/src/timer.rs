//! Waiting for a machine's next timeout.

use pcxses_core::{Epoch, Instant};
use smol::Timer;

/// The wake-up of a machine's run loop: one timer kept across its turns, and set again
/// only when the machine's next timeout comes sooner than the timer is set for, or once it
/// has fired. A turn whose drain moves the next timeout later (an AC's dead timers, as
/// HELLOs come in) then costs the reactor nothing; the loop is woken at the earlier time
/// instead, finds nothing due, and sets the alarm for the later one.
///
/// ```
/// use std::time::Duration;
/// use pcxses_core::Epoch;
/// use pcxses_driver::Alarm;
///
/// smol::block_on(async {
///     let epoch = Epoch::new();
///     let mut alarm = Alarm::new();
///     let at = epoch.now() + Duration::from_millis(5);
///     // A loop waits for this or for input, and handles the timeout only once it is due.
///     alarm.wait(epoch, at).await;
///     assert!(epoch.now() >= at);
/// });
/// ```
#[derive(Debug)]
pub struct Alarm {
    timer: Timer,
    /// When the timer is set to fire, until it has.
    set_for: Option<std::time::Instant>,
}

impl Alarm {
    /// An alarm that is not set.
    pub fn new() -> Alarm {
        Alarm {
            timer: Timer::never(),
            set_for: None,
        }
    }

    /// Completes at `at` on `epoch`'s clock (never, for [`Instant::MAX`]), or sooner: at
    /// an earlier time the alarm was set for and has not reached yet. The caller checks
    /// what is due when it completes. Dropped before then, it stays set.
    pub async fn wait(&mut self, epoch: Epoch, at: Instant) {
        if let Some(at) = epoch.to_std(at) {
            if self.set_for.is_none_or(|set_for| at < set_for) {
                self.timer.set_at(at);
                self.set_for = Some(at);
            }
        }
        (&mut self.timer).await;
        self.set_for = None;
    }
}

impl Default for Alarm {
    fn default() -> Alarm {
        Alarm::new()
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::time::Duration;

    use smol::future::FutureExt;

    use super::*;

    /// Waits for `wait`, failing after a few seconds instead of waiting on.
    async fn within(wait: impl Future<Output = ()>) {
        wait.or(async {
            Timer::after(Duration::from_secs(5)).await;
            panic!("the alarm did not go off");
        })
        .await;
    }

    #[test]
    fn a_sooner_time_sets_the_alarm_again_and_a_later_one_does_not() {
        smol::block_on(async {
            let epoch = Epoch::new();
            let mut alarm = Alarm::new();
            let start = epoch.now();
            let late = start + Duration::from_secs(3600);
            // Set for an hour, then dropped: the alarm stays set.
            let _ = smol::future::poll_once(alarm.wait(epoch, late)).await;
            assert!(alarm.set_for.is_some());
            // Sooner: set again, and it completes.
            let soon = start + Duration::from_millis(5);
            within(alarm.wait(epoch, soon)).await;
            assert!(epoch.now() >= soon);
            assert!(alarm.set_for.is_none(), "fired");
            // Set for soon, then asked for later: completes at the sooner time.
            let soon = epoch.now() + Duration::from_millis(5);
            let _ = smol::future::poll_once(alarm.wait(epoch, soon)).await;
            within(alarm.wait(epoch, late)).await;
            assert!(epoch.now() >= soon);
        });
    }

    #[test]
    fn an_alarm_for_no_time_never_completes() {
        smol::block_on(async {
            let epoch = Epoch::new();
            let mut alarm = Alarm::new();
            let waited = smol::future::poll_once(alarm.wait(epoch, Instant::MAX)).await;
            assert!(waited.is_none());
        });
    }
}
