//! The registry of a configuration: its devices and computations, written one to a
//! `[[device]]` or `[[computation]]` entry or many to a `[[device_group]]` or
//! `[[computation_group]]`, read straight into the controller's specs; and where each of
//! them is written, to name the key of a problem.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use pcxses_core::controller::{ComputationSpec, ConfigError, DeviceSpec, ObjectSpec};
use pcxses_core::MAX_HOSTED;
use serde::Deserialize;

use super::pattern::{Pattern, Text};
use super::Problem;

/// Most devices a controller serves.
pub const MAX_DEVICES: usize = 1 << 20;

/// Most computations a registry may define: as many as its devices can host.
pub const MAX_COMPUTATIONS: usize = MAX_DEVICES * MAX_HOSTED;

/// The sections of the registry, each a list of tables.
pub const SECTIONS: [&str; 4] = ["device", "computation", "device_group", "computation_group"];

/// `[[device]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceEntry {
    /// Its name.
    pub name: String,
    /// Computations it runs natively.
    #[serde(default)]
    pub runs: Vec<String>,
    /// Capabilities it offers.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Most computations it may run.
    pub max_hosted: Option<u16>,
    /// File holding the key it shares with the AC (hex), relative to the configuration: the
    /// device must then join and talk in pre-shared-key mode (see `pcxses-ac psk`).
    pub psk_file: Option<PathBuf>,
}

/// `[[computation]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComputationEntry {
    /// Its name.
    pub name: String,
    /// Its objects, in shipping order.
    pub objects: Vec<ObjectEntry>,
    /// Devices allowed to host it, in order of preference.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Capabilities a host needs.
    #[serde(default)]
    pub requires: Vec<String>,
}

/// `{ id = "…", invoke = true }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectEntry {
    /// The object's id in the repository.
    pub id: String,
    /// Whether the target starts it.
    #[serde(default)]
    pub invoke: bool,
}

/// `[[device_group]]`: `count` devices numbered from `first`, named by the pattern `name`,
/// each with the settings of a `[[device]]`. In `runs` and `psk_file` the placeholder
/// stands for the member's number too; a run without one names the same computation for
/// every member.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceGroup {
    /// The members' names: a pattern with one placeholder.
    pub name: String,
    /// How many members.
    pub count: u32,
    /// The first member's number.
    #[serde(default)]
    pub first: u32,
    /// Computations each member runs natively.
    #[serde(default)]
    pub runs: Vec<String>,
    /// Capabilities every member offers.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Most computations a member may run.
    pub max_hosted: Option<u16>,
    /// Each member's pre-shared key file: a pattern with one placeholder.
    pub psk_file: Option<String>,
}

/// `[[computation_group]]`: `count` computations numbered from `first`, named by the
/// pattern `name`, each with the settings of a `[[computation]]`. In `hosts` the
/// placeholder stands for the member's number too.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComputationGroup {
    /// The members' names: a pattern with one placeholder.
    pub name: String,
    /// How many members.
    pub count: u32,
    /// The first member's number.
    #[serde(default)]
    pub first: u32,
    /// The objects of every member, in shipping order.
    pub objects: Vec<ObjectEntry>,
    /// Devices allowed to host a member, in order of preference.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Capabilities a host needs.
    #[serde(default)]
    pub requires: Vec<String>,
}

/// A device group with its patterns read.
struct Devices {
    key: String,
    name: Pattern,
    numbers: std::ops::Range<u64>,
    runs: Vec<Text>,
    capabilities: Vec<String>,
    max_hosted: u16,
    psk_file: Option<Pattern>,
}

/// A computation group with its patterns read.
struct Computations {
    key: String,
    name: Pattern,
    numbers: std::ops::Range<u64>,
    objects: Vec<ObjectSpec>,
    hosts: Vec<Text>,
    requires: Vec<String>,
}

/// Where each device and computation of a registry is written: the entries first, in
/// order, then the members of each group, group after group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origins {
    device_entries: usize,
    /// The index of each device group's first member.
    device_groups: Vec<usize>,
    computation_entries: usize,
    /// The index of each computation group's first member.
    computation_groups: Vec<usize>,
}

impl Origins {
    /// The key path of `field` of device `i` (`device[2].runs`, `device_group[0].runs`);
    /// the entry's own with an empty `field`.
    pub fn device_key(&self, i: usize, field: &str) -> String {
        key_path("device", self.device_entries, &self.device_groups, i, field)
    }

    /// The key path of `field` of computation `i`, as [`Origins::device_key`].
    pub fn computation_key(&self, i: usize, field: &str) -> String {
        key_path(
            "computation",
            self.computation_entries,
            &self.computation_groups,
            i,
            field,
        )
    }

    /// The computations written once each: every entry, and the first member of each
    /// group (its members differ only in their names and hosts).
    pub fn written_computations(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.computation_entries).chain(self.computation_groups.iter().copied())
    }
}

/// The key path of `field` of item `i` of `section`, of which `entries` come first and
/// then the groups starting at `groups`.
fn key_path(section: &str, entries: usize, groups: &[usize], i: usize, field: &str) -> String {
    let entry = match i < entries {
        true => format!("{section}[{i}]"),
        false => {
            let g = groups
                .partition_point(|&start| start <= i)
                .saturating_sub(1);
            format!("{section}_group[{g}]")
        }
    };
    match field.is_empty() {
        true => entry,
        false => format!("{entry}.{field}"),
    }
}

/// The registry as it is read, entry by entry; see [`Registry::finish`].
#[derive(Default)]
pub struct Registry {
    devices: Vec<DeviceSpec>,
    computations: Vec<ComputationSpec>,
    device_groups: Vec<Devices>,
    computation_groups: Vec<Computations>,
    /// Entries read so far in each of [`SECTIONS`], those refused included.
    seen: [usize; SECTIONS.len()],
    /// Whether an entry or group was refused: the registry is then incomplete.
    refused: bool,
}

/// What a registry holds, once read.
pub struct Built {
    /// The devices: the entries', then the groups' members.
    pub devices: Vec<DeviceSpec>,
    /// The computations, in the same order.
    pub computations: Vec<ComputationSpec>,
    /// Where each is written.
    pub origins: Origins,
}

impl Registry {
    /// The key path of the next entry of `section` (one of [`SECTIONS`]): `device[3]`.
    pub fn next_key(&mut self, section: &str) -> String {
        let s = SECTIONS.iter().position(|&s| s == section).unwrap_or(0);
        self.seen[s] += 1;
        format!("{section}[{}]", self.seen[s] - 1)
    }

    /// Whether an entry of `section` has been read, refused or not.
    pub fn has(&self, section: &str) -> bool {
        SECTIONS
            .iter()
            .position(|&s| s == section)
            .is_some_and(|s| self.seen[s] > 0)
    }

    /// Notes that the entry at the last key could not be read.
    pub fn refuse(&mut self) {
        self.refused = true;
    }

    /// Adds the `[[device]]` at `key`, its key file read from `base`.
    pub fn device(&mut self, key: &str, d: DeviceEntry, base: &Path, problems: &mut Vec<Problem>) {
        let psk = d.psk_file.and_then(|f| {
            pcxses_program::keys::psk(&base.join(f))
                .map_err(|e| problems.push(Problem::new(format!("{key}.psk_file"), e)))
                .ok()
        });
        self.devices.push(DeviceSpec {
            name: d.name,
            runs: d.runs,
            capabilities: d.capabilities,
            max_hosted: d.max_hosted.unwrap_or(MAX_HOSTED as u16),
            psk,
        });
    }

    /// Adds the `[[computation]]`.
    pub fn computation(&mut self, c: ComputationEntry) {
        self.computations.push(ComputationSpec {
            name: c.name,
            objects: objects(c.objects),
            hosts: c.hosts,
            requires: c.requires,
        });
    }

    /// Adds the `[[device_group]]` at `key`, noting each problem of its count and patterns.
    pub fn device_group(&mut self, key: String, g: DeviceGroup, problems: &mut Vec<Problem>) {
        let numbers = numbers(&key, g.first, g.count, MAX_DEVICES, problems);
        let name = pattern(&key, "name", g.name, problems);
        let runs = texts(&key, "runs", g.runs, problems);
        let psk_file = match g.psk_file {
            None => Some(None),
            Some(f) => pattern(&key, "psk_file", f, problems).map(Some),
        };
        let (Some(numbers), Some(name), Some(runs), Some(psk_file)) =
            (numbers, name, runs, psk_file)
        else {
            return self.refuse();
        };
        self.device_groups.push(Devices {
            key,
            name,
            numbers,
            runs,
            capabilities: g.capabilities,
            max_hosted: g.max_hosted.unwrap_or(MAX_HOSTED as u16),
            psk_file,
        });
    }

    /// Adds the `[[computation_group]]` at `key`, noting each problem of its count and
    /// patterns.
    pub fn computation_group(
        &mut self,
        key: String,
        g: ComputationGroup,
        problems: &mut Vec<Problem>,
    ) {
        let numbers = numbers(&key, g.first, g.count, MAX_COMPUTATIONS, problems);
        let name = pattern(&key, "name", g.name, problems);
        let hosts = texts(&key, "hosts", g.hosts, problems);
        let (Some(numbers), Some(name), Some(hosts)) = (numbers, name, hosts) else {
            return self.refuse();
        };
        self.computation_groups.push(Computations {
            key,
            name,
            numbers,
            objects: objects(g.objects),
            hosts,
            requires: g.requires,
        });
    }

    /// The registry read, its groups expanded (every member's key file read from `base`);
    /// `None` if an entry or a group was refused, or if the groups would make more devices
    /// or computations than a controller takes.
    pub fn finish(mut self, base: &Path, problems: &mut Vec<Problem>) -> Option<Built> {
        let device_members = total(
            self.devices.len(),
            self.device_groups.iter().map(|g| (&g.key, &g.numbers)),
            MAX_DEVICES,
            "devices",
            problems,
        );
        let computation_members = total(
            self.computations.len(),
            self.computation_groups.iter().map(|g| (&g.key, &g.numbers)),
            MAX_COMPUTATIONS,
            "computations",
            problems,
        );
        let (Some(device_members), Some(computation_members)) =
            (device_members, computation_members)
        else {
            return None;
        };
        if self.refused {
            return None;
        }
        let mut origins = Origins {
            device_entries: self.devices.len(),
            computation_entries: self.computations.len(),
            ..Origins::default()
        };
        self.devices.reserve_exact(device_members);
        for g in &self.device_groups {
            origins.device_groups.push(self.devices.len());
            let mut unreadable = Unreadable::default();
            for n in g.numbers.clone() {
                let psk = g.psk_file.as_ref().and_then(|f| {
                    let file = base.join(f.expand(n));
                    pcxses_program::keys::psk(&file)
                        .map_err(|e| unreadable.note(e))
                        .ok()
                });
                self.devices.push(DeviceSpec {
                    name: g.name.expand(n),
                    runs: g.runs.iter().map(|r| r.expand(n)).collect(),
                    capabilities: g.capabilities.clone(),
                    max_hosted: g.max_hosted,
                    psk,
                });
            }
            unreadable.report(&format!("{}.psk_file", g.key), problems);
        }
        self.computations.reserve_exact(computation_members);
        for g in &self.computation_groups {
            origins.computation_groups.push(self.computations.len());
            for n in g.numbers.clone() {
                self.computations.push(ComputationSpec {
                    name: g.name.expand(n),
                    objects: g.objects.clone(),
                    hosts: g.hosts.iter().map(|h| h.expand(n)).collect(),
                    requires: g.requires.clone(),
                });
            }
        }
        Some(Built {
            devices: self.devices,
            computations: self.computations,
            origins,
        })
    }
}

/// The objects of an entry as the controller's.
fn objects(entries: Vec<ObjectEntry>) -> Vec<ObjectSpec> {
    (entries.into_iter())
        .map(|o| ObjectSpec {
            id: o.id,
            invoke: o.invoke,
        })
        .collect()
}

/// A group's member numbers, `count` (1 to `most`) from `first`.
fn numbers(
    key: &str,
    first: u32,
    count: u32,
    most: usize,
    problems: &mut Vec<Problem>,
) -> Option<std::ops::Range<u64>> {
    if count == 0 || count as usize > most {
        problems.push(Problem::new(
            format!("{key}.count"),
            format!("must be 1 to {most}"),
        ));
        return None;
    }
    Some(u64::from(first)..u64::from(first) + u64::from(count))
}

/// The pattern at `key.field`, which must hold one placeholder.
fn pattern(key: &str, field: &str, text: String, problems: &mut Vec<Problem>) -> Option<Pattern> {
    Pattern::parse(text)
        .map_err(|e| problems.push(Problem::new(format!("{key}.{field}"), e)))
        .ok()
}

/// The texts at `key.field`, each with one placeholder or none.
fn texts(
    key: &str,
    field: &str,
    list: Vec<String>,
    problems: &mut Vec<Problem>,
) -> Option<Vec<Text>> {
    let before = problems.len();
    let texts: Vec<Text> = (list.into_iter().enumerate())
        .filter_map(|(j, t)| {
            Text::parse(t)
                .map_err(|e| problems.push(Problem::new(format!("{key}.{field}[{j}]"), e)))
                .ok()
        })
        .collect();
    (problems.len() == before).then_some(texts)
}

/// The items of `entries` entries and of the groups, if they are at most `most`; the
/// problem names the count of the group that goes beyond otherwise.
fn total<'g>(
    entries: usize,
    groups: impl Iterator<Item = (&'g String, &'g std::ops::Range<u64>)>,
    most: usize,
    what: &str,
    problems: &mut Vec<Problem>,
) -> Option<usize> {
    let mut all = entries as u64;
    for (key, numbers) in groups {
        all += numbers.end - numbers.start;
        if all > most as u64 {
            problems.push(Problem::new(
                format!("{key}.count"),
                format!("with this group the registry has {all} {what}: at most {most}"),
            ));
            return None;
        }
    }
    Some(all as usize - entries)
}

/// The key files of a group's members that could not be read: the first error, and how
/// many more.
#[derive(Default)]
struct Unreadable {
    first: Option<String>,
    more: usize,
}

impl Unreadable {
    fn note(&mut self, error: String) {
        match self.first {
            None => self.first = Some(error),
            Some(_) => self.more += 1,
        }
    }

    fn report(self, key: &str, problems: &mut Vec<Problem>) {
        if let Some(first) = self.first {
            let more = match self.more {
                0 => String::new(),
                n => format!(" (and {n} more members' key files)"),
            };
            problems.push(Problem::new(key, format!("{first}{more}")));
        }
    }
}

/// The key path of a controller's configuration error in a registry: the entry or group
/// that holds what it names. Looks names up in maps built the first time a kind of error
/// needs one, so that a million errors cost a million look-ups.
pub struct ErrorKeys<'r> {
    devices: &'r [DeviceSpec],
    computations: &'r [ComputationSpec],
    origins: &'r Origins,
    device_names: Option<HashMap<&'r str, usize>>,
    computation_names: Option<HashMap<&'r str, usize>>,
    runs: Option<HashMap<&'r str, usize>>,
    hosts: Option<HashMap<&'r str, usize>>,
    object_ids: Option<HashMap<&'r str, (usize, usize)>>,
}

impl<'r> ErrorKeys<'r> {
    /// For the registry of `devices` and `computations`, written as `origins` says.
    pub fn new(
        devices: &'r [DeviceSpec],
        computations: &'r [ComputationSpec],
        origins: &'r Origins,
    ) -> ErrorKeys<'r> {
        ErrorKeys {
            devices,
            computations,
            origins,
            device_names: None,
            computation_names: None,
            runs: None,
            hosts: None,
            object_ids: None,
        }
    }

    /// The key of `e`, if it is about the registry and names something in it: where the
    /// last device or computation it names is written (the first object).
    pub fn key(&mut self, e: &ConfigError) -> Option<String> {
        let (devices, comps, origins) = (self.devices, self.computations, self.origins);
        let device = |i: usize, field| origins.device_key(i, field);
        let comp = |i: usize, field| origins.computation_key(i, field);
        match e {
            ConfigError::BadName(n) | ConfigError::Duplicate(n) => {
                let names = last_of(&mut self.device_names, devices.iter().map(|d| &d.name));
                if let Some(&i) = names.get(n.as_str()) {
                    return Some(device(i, "name"));
                }
                let names = last_of(&mut self.computation_names, comps.iter().map(|c| &c.name));
                if let Some(&i) = names.get(n.as_str()) {
                    return Some(comp(i, "name"));
                }
                let ids = self.object_ids.get_or_insert_with(|| {
                    let mut first = HashMap::new();
                    for (i, c) in comps.iter().enumerate() {
                        for (j, o) in c.objects.iter().enumerate() {
                            first.entry(o.id.as_str()).or_insert((i, j));
                        }
                    }
                    first
                });
                let &(i, j) = ids.get(n.as_str())?;
                Some(comp(i, &format!("objects[{j}].id")))
            }
            ConfigError::Objects(n) => {
                let names = last_of(&mut self.computation_names, comps.iter().map(|c| &c.name));
                Some(comp(*names.get(n.as_str())?, "objects"))
            }
            ConfigError::TooManyRuns(n) => {
                let names = last_of(&mut self.device_names, devices.iter().map(|d| &d.name));
                Some(device(*names.get(n.as_str())?, "runs"))
            }
            ConfigError::UnknownComputation(n) | ConfigError::TwoHomes(n) => {
                let runs = self.runs.get_or_insert_with(|| {
                    let by_device = devices.iter().enumerate();
                    (by_device.flat_map(|(i, d)| d.runs.iter().map(move |r| (r.as_str(), i))))
                        .collect()
                });
                Some(device(*runs.get(n.as_str())?, "runs"))
            }
            ConfigError::UnknownDevice(n) => {
                let hosts = self.hosts.get_or_insert_with(|| {
                    let by_comp = comps.iter().enumerate();
                    (by_comp.flat_map(|(i, c)| c.hosts.iter().map(move |h| (h.as_str(), i))))
                        .collect()
                });
                Some(comp(*hosts.get(n.as_str())?, "hosts"))
            }
            _ => None,
        }
    }
}

/// The index of the last of `names` by name, built into `map` the first time.
fn last_of<'m, 'r: 'm>(
    map: &'m mut Option<HashMap<&'r str, usize>>,
    names: impl Iterator<Item = &'r String>,
) -> &'m HashMap<&'r str, usize> {
    map.get_or_insert_with(|| names.enumerate().map(|(i, n)| (n.as_str(), i)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_entry_or_the_group_of_an_item() {
        let origins = Origins {
            device_entries: 2,
            device_groups: vec![2, 12],
            computation_entries: 0,
            computation_groups: vec![0],
        };
        assert_eq!(origins.device_key(1, "runs"), "device[1].runs");
        assert_eq!(origins.device_key(2, "name"), "device_group[0].name");
        assert_eq!(origins.device_key(11, ""), "device_group[0]");
        assert_eq!(origins.device_key(12, "runs"), "device_group[1].runs");
        assert_eq!(
            origins.computation_key(5, "hosts"),
            "computation_group[0].hosts"
        );
        assert_eq!(origins.written_computations().collect::<Vec<_>>(), [0]);
    }
}
