//! What the configuration registers and never changes: names, capabilities, requirements,
//! host lists, objects and native computations, packed (see [`Names`], [`Lists`]); the
//! entries of devices and computations refer to them by number.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::computation::CompEntry;
use super::config::{ControllerConfig, ObjectSpec};
use super::lists::{is_subset, Interner, Lists};
use super::names::Names;
use super::session::DeviceEntry;

/// The registry's fixed part.
#[derive(Debug)]
pub(super) struct Registry {
    pub(super) devices: Names,
    pub(super) comps: Names,
    /// Each device's own computations, by device.
    pub(super) natives: Lists<u32>,
    /// Devices' capability sets: sorted capability numbers. Set 0 is empty.
    pub(super) capsets: Lists<u32>,
    /// Computations' requirement sets: sorted capability numbers. Set 0 is empty.
    pub(super) reqsets: Lists<u32>,
    /// Host lists, each device once, in order of preference. List 0 is empty.
    pub(super) hosts: Lists<u32>,
    /// Computations' objects, in the order they are shipped.
    pub(super) objects: Lists<ObjectSpec>,
}

impl Registry {
    /// The registry of a validated configuration with its [`ControllerConfig::names`], and
    /// the entries of its devices and computations.
    pub(super) fn new(
        config: &ControllerConfig,
        (devices, comps): (Names, Names),
    ) -> (Registry, Vec<DeviceEntry>, Vec<CompEntry>) {
        let mut capabilities = BTreeMap::new();
        let all = (config.devices.iter()).flat_map(|d| d.capabilities.iter());
        for name in all.chain(config.computations.iter().flat_map(|c| c.requires.iter())) {
            let next = capabilities.len() as u32;
            capabilities.entry(name.as_str()).or_insert(next);
        }
        let set = |names: &[alloc::string::String]| {
            let mut set: Vec<u32> = names.iter().map(|n| capabilities[n.as_str()]).collect();
            set.sort_unstable();
            set.dedup();
            set
        };
        let mut capsets = Interner::new(Vec::new());
        let mut natives = Lists::default();
        let mut entries: Vec<DeviceEntry> = Vec::with_capacity(config.devices.len());
        let mut runs = comps.finder();
        for d in &config.devices {
            let caps = set(&d.capabilities);
            let caps = capsets.intern(caps.clone(), || caps);
            entries.push(DeviceEntry::new(d.max_hosted, caps));
            natives.push(d.runs.iter().filter_map(|r| runs.find(r)));
        }
        natives.shrink();
        let mut reqsets = Interner::new(Vec::new());
        let mut hosts = Interner::new(Vec::new());
        let mut objects = Interner::new(Vec::new());
        let mut comp_entries: Vec<CompEntry> = Vec::with_capacity(config.computations.len());
        let mut host_names = devices.finder();
        for c in &config.computations {
            let reqs = set(&c.requires);
            let reqs = reqsets.intern(reqs.clone(), || reqs);
            let mut list: Vec<u32> = Vec::with_capacity(c.hosts.len());
            for h in c.hosts.iter().filter_map(|h| host_names.find(h)) {
                if !list.contains(&h) {
                    list.push(h);
                }
            }
            let list = hosts.intern(list.clone(), || list);
            let key: Vec<(&str, bool)> = (c.objects.iter())
                .map(|o| (o.id.as_str(), o.invoke))
                .collect();
            let objs = objects.intern(key, || c.objects.iter().cloned());
            comp_entries.push(CompEntry::new(objs, list, reqs));
        }
        for d in 0..natives.len() {
            for &c in natives.get(d) {
                comp_entries[c as usize].home = Some(d);
            }
        }
        let registry = Registry {
            devices,
            comps,
            natives,
            capsets: capsets.finish(),
            reqsets: reqsets.finish(),
            hosts: hosts.finish(),
            objects: objects.finish(),
        };
        (registry, entries, comp_entries)
    }

    /// Whether devices with capability set `caps` meet requirement set `reqs`.
    pub(super) fn meets(&self, caps: u32, reqs: u32) -> bool {
        is_subset(self.reqsets.get(reqs), self.capsets.get(caps))
    }

    /// Whether device `d`, with capability set `caps`, can ever host a computation with
    /// requirement set `reqs` and host list `hosts`.
    pub(super) fn capable(&self, d: u32, caps: u32, reqs: u32, hosts: u32) -> bool {
        let hosts = self.hosts.get(hosts);
        (hosts.is_empty() || hosts.contains(&d)) && self.meets(caps, reqs)
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;
    use crate::controller::{ComputationSpec, DeviceSpec};

    #[test]
    fn equal_lists_are_stored_once_and_capabilities_compare_as_sets() {
        let mut a = DeviceSpec::new("a", &["x"]);
        a.capabilities = vec!["fpu".into(), "wasm".into(), "fpu".into()];
        let mut b = DeviceSpec::new("b", &["y"]);
        b.capabilities = vec!["wasm".into(), "fpu".into()];
        let c = DeviceSpec::new("c", &[]);
        let mut x = ComputationSpec::new("x", "code");
        x.requires = vec!["wasm".into()];
        x.hosts = vec!["c".into(), "a".into(), "c".into()];
        let mut y = ComputationSpec::new("y", "code");
        y.requires = vec!["gpu".into()];
        let config = ControllerConfig::new(1, vec![a, b, c], vec![x, y]);
        let (r, devices, comps) = Registry::new(&config, config.names());
        assert_eq!(devices[0].caps, devices[1].caps);
        assert_eq!(devices[2].caps, 0);
        assert_eq!(r.capsets.len(), 2);
        assert_eq!(comps[0].objects, comps[1].objects);
        assert_eq!(r.hosts.get(comps[0].hosts), [2, 0]);
        assert_eq!((comps[0].home, comps[1].home), (Some(0), Some(1)));
        assert_eq!(r.natives.get(2), [] as [u32; 0]);
        assert!(r.meets(devices[0].caps, comps[0].requires));
        assert!(!r.meets(devices[0].caps, comps[1].requires));
        assert!(!r.meets(devices[2].caps, comps[0].requires));
        assert!(r.capable(0, devices[0].caps, comps[0].requires, comps[0].hosts));
        assert!(!r.capable(1, devices[1].caps, comps[0].requires, comps[0].hosts));
        assert!(r.capable(1, devices[1].caps, 0, 0));
    }
}
