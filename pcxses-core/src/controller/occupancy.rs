//! How full the AC's tables are: everything a peer's bottles can make it hold, each bounded
//! by the configuration, for monitoring and for tests that push past the bounds.

use super::computation::Place;
use super::Controller;

/// Entries in the AC's tables that grow and shrink with traffic. Each is bounded: by the
/// number of computations, of hosted computations, or of devices, as documented per field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Occupancy {
    /// MORPH attempts in flight: at most one per computation.
    pub attempts: usize,
    /// Computations waiting for a target: at most the computations.
    pub waiting: usize,
    /// Computations waiting for their turn to start a MORPH: at most the computations.
    pub paced: usize,
    /// State versions being reassembled: at most one per hosted computation.
    pub reassemblies: usize,
    /// Failed target sessions remembered by recoveries: at most one per device and
    /// 64 per computation.
    pub tried: usize,
    /// Timer entries, stale ones included: at most about twice the live sessions,
    /// attempts and quarantine retries.
    pub timers: usize,
}

impl Controller {
    /// How full the AC's tables are now.
    pub fn occupancy(&self) -> Occupancy {
        Occupancy {
            attempts: self.attempts.len(),
            waiting: self.waiting.len(),
            paced: self.paced.len(),
            reassemblies: self.reassemblies.len(),
            tried: (self.comps.iter())
                .map(|c| match &c.place {
                    Place::Recovering(r) => r.tried.len(),
                    _ => 0,
                })
                .sum(),
            timers: self.dead_timers.len() + self.attempt_timers.len() + self.retry_timers.len(),
        }
    }

    /// Drops stale timer entries once they outnumber the live ones, so that sessions or
    /// attempts opened and ended faster than their timers come due cannot grow the heaps.
    pub(super) fn compact_timers(&mut self) {
        if self.dead_timers.len() > 2 * self.devices.len() + 64 {
            let devices = &self.devices;
            (self.dead_timers)
                .compact(|k| devices.get(k as usize)?.session.as_ref().map(|s| s.armed));
        }
        if self.attempt_timers.len() > 2 * self.attempts.len() + 64 {
            let attempts = &self.attempts;
            (self.attempt_timers).compact(|k| attempts.get(&k).map(|a| a.armed));
        }
        if self.retry_timers.len() > 2 * self.comps.len() + 64 {
            let comps = &self.comps;
            (self.retry_timers).compact(|k| Some(comps.get(k as usize)?.retry_at()));
        }
    }
}
