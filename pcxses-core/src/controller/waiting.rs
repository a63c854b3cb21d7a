//! Computations waiting for a target (every candidate busy, or none), indexed by what can
//! host them: their host list's devices, or else their requirement set. A device that
//! joins or has room again is offered to those it can host, in the order of their
//! numbers, a bounded number at a time: an offer cut short goes on at the next timeout.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use super::computation::{CompEntry, Place};
use super::merge::Merge;
use super::registry::Registry;
use super::targets::room;
use super::Controller;
use crate::time::Instant;

/// Waiting computations one offer examines at most.
const OFFER_BATCH: usize = 32;
/// Offers cut short that one timeout goes on with at most.
const RESUMES: usize = 8;
/// Keys of computations with a host list: this bit and a host device.
const HOST: u64 = 1 << 31;

/// The waiting computations.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    all: BTreeSet<u32>,
    /// Each waiting computation under each of its keys: the key in the high 32 bits.
    by_key: BTreeSet<u64>,
    /// Offers cut short: the device offered, and the last computation examined.
    resume: BTreeMap<u32, u32>,
}

impl Waiting {
    pub(super) fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether an offer cut short waits to go on.
    pub(super) fn resuming(&self) -> bool {
        !self.resume.is_empty()
    }
}

/// The keys computation `comp` waits under: each device of its host list, or else its
/// requirement set.
fn keys<'a>(registry: &'a Registry, comp: &CompEntry) -> impl Iterator<Item = u64> + 'a {
    let hosts = registry.hosts.get(comp.hosts);
    let requires = hosts.is_empty().then_some(u64::from(comp.requires));
    (hosts.iter().map(|&h| HOST | u64::from(h))).chain(requires)
}

impl Controller {
    /// Computation `c` waits for a target.
    pub(super) fn wait(&mut self, c: u32) {
        if self.waiting.all.insert(c) {
            for key in keys(&self.registry, &self.comps[c as usize]) {
                self.waiting.by_key.insert(key << 32 | u64::from(c));
            }
        }
    }

    /// Computation `c` no longer waits for a target.
    pub(super) fn unwait(&mut self, c: u32) {
        if self.waiting.all.remove(&c) {
            for key in keys(&self.registry, &self.comps[c as usize]) {
                self.waiting.by_key.remove(&(key << 32 | u64::from(c)));
            }
        }
    }

    /// Offers device `d`, which just joined or has a free slot again, to the computations
    /// waiting for a target that it can host.
    pub(super) fn offer(&mut self, d: u32, now: Instant) {
        self.offer_after(d, None, now);
    }

    /// Goes on with offers cut short, a bounded number of them.
    pub(super) fn resume_offers(&mut self, now: Instant) {
        for _ in 0..RESUMES {
            let Some((d, after)) = self.waiting.resume.pop_first() else {
                return;
            };
            self.offer_after(d, Some(after), now);
        }
    }

    /// Whether device `d` is live with room for another computation.
    fn has_room(&self, d: u32) -> bool {
        let dev = &self.devices[d as usize];
        let max = self.settings.max_morphs_per_target;
        dev.session
            .as_ref()
            .is_some_and(|s| room(dev, s, max).is_some())
    }

    /// [`Controller::offer`], to the computations numbered after `after`.
    fn offer_after(&mut self, d: u32, after: Option<u32>, now: Instant) {
        if !self.has_room(d) {
            return;
        }
        let caps = self.devices[d as usize].caps;
        let mut keys: Vec<u64> = (0..self.registry.reqsets.len())
            .filter(|&reqs| self.registry.meets(caps, reqs))
            .map(u64::from)
            .collect();
        keys.push(HOST | u64::from(d));
        let Some(first) = after.map_or(Some(0), |c| c.checked_add(1)) else {
            return;
        };
        let first = u64::from(first);
        let ranges = (keys.iter())
            .map(|&k| (self.waiting.by_key).range(k << 32 | first..=k << 32 | 0xffff_ffff));
        let batch: Vec<u32> = Merge::new(ranges, 0xffff_ffff)
            .take(OFFER_BATCH)
            .map(|key| key as u32)
            .collect();
        for &c in &batch {
            if !self.has_room(d) {
                return;
            }
            if self.fits(c, d) {
                self.unwait(c);
                self.place(c, now);
            }
        }
        if let (OFFER_BATCH, Some(&last)) = (batch.len(), batch.last()) {
            if self.has_room(d) {
                self.waiting.resume.insert(d, last);
            }
        }
    }

    /// Whether recovering computation `c` may go to live device `d`.
    fn fits(&self, c: u32, d: u32) -> bool {
        let dev = &self.devices[d as usize];
        let comp = &self.comps[c as usize];
        let (Some(s), Place::Recovering(r)) = (dev.session.as_ref(), &comp.place) else {
            return false;
        };
        s.id != r.from_session
            && !r.tried.contains(&s.id)
            && s.auth >= self.required_auth(comp, r)
            && (self.registry).capable(d, dev.caps, comp.requires, comp.hosts)
    }
}

#[cfg(test)]
impl Controller {
    /// Checks the index of waiting computations: each under its keys, each recovering
    /// without a MORPH in flight.
    pub(super) fn check_waiting(&self) {
        let mut by_key = BTreeSet::new();
        for &c in &self.waiting.all {
            let comp = &self.comps[c as usize];
            assert!(
                matches!(&comp.place, Place::Recovering(r) if r.attempt.is_none()),
                "computation {c} waits"
            );
            by_key.extend(keys(&self.registry, comp).map(|k| k << 32 | u64::from(c)));
        }
        assert_eq!(self.waiting.by_key, by_key);
    }
}

#[cfg(test)]
mod tests {
    use alloc::format;
    use alloc::vec::Vec;

    use super::super::test_fleet::{device_name, Fleet, Op};
    use super::super::{ComputationSpec, ControllerConfig, DeviceSpec};
    use super::OFFER_BATCH;

    /// Five devices running eight computations each die; the one device left has room for
    /// one and fails every MORPH, so each computation tries it once. An offer examines
    /// [`OFFER_BATCH`] computations: once that many tried it, the offer stops and goes on
    /// at the next timeout, which the controller asks for at once.
    #[test]
    fn an_offer_cut_short_goes_on_at_the_next_timeout() {
        let comps: Vec<ComputationSpec> = (0..40)
            .map(|c| ComputationSpec::new(&format!("comp{c:02}"), "code"))
            .collect();
        let mut devices: Vec<DeviceSpec> = (0..5)
            .map(|d| {
                let runs: Vec<&str> = comps[d * 8..d * 8 + 8].iter().map(|c| &*c.name).collect();
                DeviceSpec::new(&device_name(d), &runs)
            })
            .collect();
        let mut target = DeviceSpec::new(&device_name(5), &[]);
        target.max_hosted = 1;
        devices.push(target);
        let mut config = ControllerConfig::new(1, devices, comps);
        config.max_morphs_per_target = 1;
        let mut fleet = Fleet::new(config);
        for d in 0..6 {
            let slow = d == 5;
            fleet.apply(&Op::Join {
                d,
                authenticated: false,
                slow,
            });
        }
        fleet.apply(&Op::Wait(400));
        assert_eq!(fleet.morphs.len(), 1, "one computation moves to the target");
        let mut failures = 0;
        while !fleet.morphs.is_empty() {
            fleet.apply(&Op::Fail(0));
            failures += 1;
            assert!(failures <= OFFER_BATCH, "the offer was cut short");
        }
        assert_eq!(failures, OFFER_BATCH);
        assert!(
            fleet.wake <= fleet.now,
            "the controller asks to go on at once"
        );
        fleet.ac.check_waiting();
        fleet.apply(&Op::Wait(0));
        assert_eq!(fleet.morphs.len(), 1, "the offer went on");
        assert!(fleet.wake > fleet.now);
    }
}
