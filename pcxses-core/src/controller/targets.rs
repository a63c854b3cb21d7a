//! Where a recovering computation may go: the index of live devices by class (capability
//! set and authentication), load and name, kept up to date as sessions open and end and
//! loads change, and the search for a computation's candidates in it. A search without a
//! host list reads the qualifying classes together, least loaded first, and stops after a
//! bounded number of candidates (see [`crate::policy::Policy`]): its cost depends on what
//! it examines and on the number of distinct capability sets, not on the registry's size.
//! One with a host list reads the list.

use alloc::collections::{btree_set, BTreeSet};
use alloc::vec::Vec;

use super::computation::CompEntry;
use super::merge::Merge;
use super::recovery::Recovery;
use super::session::{DeviceEntry, Session};
use super::Controller;
use crate::policy::{AuthLevel, MAX_CANDIDATES, MAX_EXAMINED};
use crate::time::{ms, Instant};

/// Bits of a device's rank in name order (at most 2^20 devices).
const RANK_BITS: u32 = 20;
/// Bits of a load.
const LOAD_BITS: u32 = 16;
const RANK_MASK: u64 = (1 << RANK_BITS) - 1;
/// The load and rank of a key of the free set: the order of a search.
const FREE_ORDER: u64 = (1 << (LOAD_BITS + RANK_BITS)) - 1;

/// Where the index holds a device, and under which authentication and load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    /// No live session: not in the index.
    Out,
    /// Live, with room for another computation.
    Free(AuthLevel, u16),
    /// Live, without room.
    Full(AuthLevel),
}

/// The live devices.
#[derive(Debug, Default)]
pub(super) struct Targets {
    /// Those with room, by class, load and rank.
    free: BTreeSet<u64>,
    /// Those without, by class and rank.
    full: BTreeSet<u64>,
}

/// The class of devices with capability set `caps` and sessions authenticated `auth`.
fn class(caps: u32, auth: AuthLevel) -> u64 {
    u64::from(caps) << 1 | auth as u64
}

impl Targets {
    fn set_of(&mut self, caps: u32, rank: u32, slot: Slot) -> Option<(&mut BTreeSet<u64>, u64)> {
        let rank = u64::from(rank);
        match slot {
            Slot::Out => None,
            Slot::Free(auth, load) => {
                let key = class(caps, auth) << (LOAD_BITS + RANK_BITS);
                Some((&mut self.free, key | u64::from(load) << RANK_BITS | rank))
            }
            Slot::Full(auth) => Some((&mut self.full, class(caps, auth) << RANK_BITS | rank)),
        }
    }

    /// Moves the device of capability set `caps` and rank `rank` from slot `from` to `to`.
    fn shift(&mut self, caps: u32, rank: u32, from: Slot, to: Slot) {
        if let Some((set, key)) = self.set_of(caps, rank, from) {
            set.remove(&key);
        }
        if let Some((set, key)) = self.set_of(caps, rank, to) {
            set.insert(key);
        }
    }

    /// The devices of class `class` with room, least loaded first, then by name.
    fn free_of(&self, class: u64) -> btree_set::Range<'_, u64> {
        let low = class << (LOAD_BITS + RANK_BITS);
        self.free.range(low..=low | FREE_ORDER)
    }

    /// The devices of class `class` without room.
    fn full_of(&self, class: u64) -> btree_set::Range<'_, u64> {
        let low = class << RANK_BITS;
        self.full.range(low..=low | RANK_MASK)
    }
}

/// The load of device `dev` in session `s`, if it has room for another computation.
pub(super) fn room(dev: &DeviceEntry, s: &Session, max_morphs: u16) -> Option<usize> {
    let load = s.hosted.len() + usize::from(dev.morphs_in);
    (load < usize::from(dev.max_hosted) && dev.morphs_in < max_morphs).then_some(load)
}

/// How a device qualifies as the target of a recovering computation, capabilities aside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fit {
    /// No live session, or the failed one, or one as good as dead, or one tried already.
    Excluded,
    /// Live, not authenticated enough.
    Weak,
    /// Qualifies, without room.
    Busy,
    /// Qualifies, with room and this load; `late`: late with its HELLO, or the target whose
    /// MORPH last stalled.
    Room { load: usize, late: bool },
}

/// One candidate: device, load, rank in the host list.
pub(super) type Found = (u32, usize, Option<usize>);

/// What a search for targets found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Search {
    /// Candidates that are not late, best first.
    pub(super) fresh: Vec<Found>,
    /// Candidates that are late, best first.
    pub(super) late: Vec<Found>,
    /// Some live device, not excluded, is capable.
    pub(super) any_capable: bool,
    /// Some live device, not excluded, is capable and authenticated enough.
    pub(super) any_authenticated: bool,
}

impl Search {
    /// Adds a candidate, unless `bounded` and [`MAX_CANDIDATES`] of its kind are in.
    fn add(&mut self, found: Found, late: bool, bounded: bool) {
        let list = if late {
            &mut self.late
        } else {
            &mut self.fresh
        };
        if !bounded || list.len() < MAX_CANDIDATES {
            list.push(found);
        }
    }

    fn is_empty(&self) -> bool {
        self.fresh.is_empty() && self.late.is_empty()
    }

    /// The candidates to offer the policy: those not late, or else the late ones.
    pub(super) fn candidates(&self) -> &[Found] {
        if self.fresh.is_empty() {
            &self.late
        } else {
            &self.fresh
        }
    }
}

impl Controller {
    /// Puts device `d` where its session, load and limits say in the index. Called after
    /// anything that changes them.
    pub(super) fn reindex(&mut self, d: u32) {
        let dev = &self.devices[d as usize];
        let slot = match &dev.session {
            None => Slot::Out,
            Some(s) => match room(dev, s, self.settings.max_morphs_per_target) {
                Some(load) => Slot::Free(s.auth, load as u16),
                None => Slot::Full(s.auth),
            },
        };
        if slot != dev.slot {
            let rank = self.registry.devices.rank(d);
            self.targets.shift(dev.caps, rank, dev.slot, slot);
            self.devices[d as usize].slot = slot;
        }
    }

    /// How device `d` qualifies as a target of a computation recovering by `r` that needs
    /// targets authenticated `required`.
    fn fit(&self, d: u32, r: &Recovery, required: AuthLevel, now: Instant) -> Fit {
        let dev = &self.devices[d as usize];
        let Some(s) = dev.session.as_ref() else {
            return Fit::Excluded;
        };
        // A device whose dead interval has run out is as good as dead: its timer is due in
        // this same pass.
        if s.id == r.from_session || s.dead_at <= now || r.tried.contains(&s.id) {
            return Fit::Excluded;
        }
        if s.auth < required {
            return Fit::Weak;
        }
        let Some(load) = room(dev, s, self.settings.max_morphs_per_target) else {
            return Fit::Busy;
        };
        // Devices overdue with their HELLO (more than half an interval late) go last: when
        // many devices fail at once, those are likely among them, not yet declared dead.
        let late = ms(s.hello_ms.saturating_add(s.hello_ms / 2));
        let late = now.saturating_since(s.last_hello) > late || s.id == r.stalled;
        Fit::Room { load, late }
    }

    /// The targets computation `comp`, recovering by `r`, may move to if they are
    /// authenticated `required`, as [`crate::policy::Policy`] says.
    pub(super) fn search(
        &self,
        comp: &CompEntry,
        r: &Recovery,
        required: AuthLevel,
        now: Instant,
    ) -> Search {
        let hosts = self.registry.hosts.get(comp.hosts);
        if !hosts.is_empty() {
            return self.search_hosts(hosts, comp, r, required, now);
        }
        // The classes of capable devices, and whether they are authenticated enough.
        let classes: Vec<(u64, bool)> = (0..self.registry.capsets.len())
            .filter(|&caps| self.registry.meets(caps, comp.requires))
            .flat_map(|caps| {
                [AuthLevel::Unauthenticated, AuthLevel::Authenticated]
                    .map(|auth| (class(caps, auth), auth >= required))
            })
            .collect();
        let strong = || classes.iter().filter(|c| c.1).map(|c| c.0);
        let weak = || classes.iter().filter(|c| !c.1).map(|c| c.0);
        let mut search = Search::default();
        let by_load = Merge::new(strong().map(|c| self.targets.free_of(c)), FREE_ORDER);
        for (examined, key) in by_load.enumerate() {
            let d = self.registry.devices.at_rank((key & RANK_MASK) as u32);
            if let Fit::Room { load, late } = self.fit(d, r, required, now) {
                search.add((d, load, None), late, true);
                if search.fresh.len() == MAX_CANDIDATES {
                    break;
                }
            }
            if examined + 1 >= MAX_EXAMINED && !search.is_empty() {
                break;
            }
        }
        // Without candidates every device with room of those classes was examined: any
        // other qualifying device is busy, or not authenticated enough.
        let live = |keys: &mut dyn Iterator<Item = u64>| {
            keys.map(|key| self.registry.devices.at_rank((key & RANK_MASK) as u32))
                .any(|d| self.fit(d, r, required, now) != Fit::Excluded)
        };
        search.any_authenticated = !search.is_empty()
            || live(&mut strong().flat_map(|c| self.targets.full_of(c)).copied());
        search.any_capable = search.any_authenticated
            || live(
                &mut weak()
                    .flat_map(|c| self.targets.free_of(c).chain(self.targets.full_of(c)))
                    .copied(),
            );
        search
    }

    /// [`Controller::search`] for a computation with host list `hosts`.
    fn search_hosts(
        &self,
        hosts: &[u32],
        comp: &CompEntry,
        r: &Recovery,
        required: AuthLevel,
        now: Instant,
    ) -> Search {
        let mut search = Search::default();
        for (priority, &d) in hosts.iter().enumerate() {
            if !self
                .registry
                .meets(self.devices[d as usize].caps, comp.requires)
            {
                continue;
            }
            let fit = self.fit(d, r, required, now);
            search.any_capable |= fit != Fit::Excluded;
            search.any_authenticated |= !matches!(fit, Fit::Excluded | Fit::Weak);
            if let Fit::Room { load, late } = fit {
                search.add((d, load, Some(priority)), late, false);
            }
        }
        search
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
impl Controller {
    /// Checks the index against every device: each where its state says, nothing else.
    pub(super) fn check_targets(&self) {
        let mut expected = Targets::default();
        for (d, dev) in self.devices.iter().enumerate() {
            let slot = match &dev.session {
                None => Slot::Out,
                Some(s) => match room(dev, s, self.settings.max_morphs_per_target) {
                    Some(load) => Slot::Free(s.auth, load as u16),
                    None => Slot::Full(s.auth),
                },
            };
            assert_eq!(dev.slot, slot, "device {d}");
            let rank = self.registry.devices.rank(d as u32);
            expected.shift(dev.caps, rank, Slot::Out, slot);
        }
        assert_eq!(self.targets.free, expected.free);
        assert_eq!(self.targets.full, expected.full);
    }

    /// [`Controller::search`] by brute force: every registered device, sorted; `bounded`:
    /// stopping where the search stops, else offering every qualifying device.
    pub(super) fn search_every_device(
        &self,
        comp: &CompEntry,
        r: &Recovery,
        required: AuthLevel,
        now: Instant,
        bounded: bool,
    ) -> Search {
        let hosts = self.registry.hosts.get(comp.hosts);
        let bounded = bounded && hosts.is_empty();
        let mut search = Search::default();
        let mut order = Vec::new();
        for (d, dev) in self.devices.iter().enumerate() {
            let d = d as u32;
            if !(self.registry).capable(d, dev.caps, comp.requires, comp.hosts) {
                continue;
            }
            let fit = self.fit(d, r, required, now);
            search.any_capable |= fit != Fit::Excluded;
            search.any_authenticated |= !matches!(fit, Fit::Excluded | Fit::Weak);
            let Some(s) = dev.session.as_ref() else {
                continue;
            };
            let Some(load) = room(dev, s, self.settings.max_morphs_per_target) else {
                continue;
            };
            if s.auth >= required {
                let priority = hosts.iter().position(|&h| h == d);
                let name = self.registry.devices.get(d);
                order.push((priority, load, name, d, fit));
            }
        }
        order.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
        for (examined, &(priority, load, _, d, fit)) in order.iter().enumerate() {
            if let Fit::Room { late, .. } = fit {
                search.add((d, load, priority), late, bounded);
                if search.fresh.len() == MAX_CANDIDATES && bounded {
                    break;
                }
            }
            if examined + 1 >= MAX_EXAMINED && !search.is_empty() && bounded {
                break;
            }
        }
        search
    }
}
