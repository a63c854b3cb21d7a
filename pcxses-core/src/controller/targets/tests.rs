//! The indexes of targets and of waiting computations against the registry itself, and
//! the indexed search against a search of every device, over random registries that
//! devices join, HELLO, die in, answer MORPHs in and leave, with the controller restored
//! from its journal now and then.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::super::recovery::Recovery;
use super::super::test_fleet::{device_name, Fleet, Op};
use super::super::{ComputationSpec, ControllerConfig, DeviceSpec};
use crate::policy::{
    AuthLevel, Candidate, LeastLoadedPolicy, Policy, PriorityPolicy, MAX_CANDIDATES,
};
use crate::rng::Rng;
use crate::time::ms;

const CAPABILITIES: [&str; 3] = ["a", "b", "c"];

fn capabilities(bits: u8) -> Vec<String> {
    (CAPABILITIES.iter().enumerate())
        .filter(|(i, _)| bits >> i & 1 == 1)
        .map(|(_, c)| String::from(*c))
        .collect()
}

#[derive(Clone, Debug)]
struct DeviceGen {
    capabilities: u8,
    max_hosted: u16,
}

#[derive(Clone, Debug)]
struct CompGen {
    home: Option<usize>,
    requires: u8,
    hosts: Vec<usize>,
}

fn config(devices: &[DeviceGen], comps: &[CompGen], max_morphs: u16) -> ControllerConfig {
    let n = devices.len();
    let mut specs: Vec<DeviceSpec> = (devices.iter().enumerate())
        .map(|(i, g)| {
            let mut d = DeviceSpec::new(&device_name(i), &[]);
            d.capabilities = capabilities(g.capabilities);
            d.max_hosted = g.max_hosted;
            d
        })
        .collect();
    let comps = (comps.iter().enumerate())
        .map(|(i, g)| {
            let name = format!("comp{i}");
            let mut c = ComputationSpec::new(&name, "code");
            c.requires = capabilities(g.requires);
            c.hosts = g.hosts.iter().map(|&h| device_name(h % n)).collect();
            if let Some(h) = g.home.map(|h| h % n) {
                if specs[h].runs.len() < usize::from(specs[h].max_hosted).min(8) {
                    specs[h].runs.push(name);
                }
            }
            c
        })
        .collect();
    let mut config = ControllerConfig::new(7, specs, comps);
    config.max_morphs_per_target = max_morphs;
    config
}

/// Checks both indexes, and compares searches for made-up recoveries of every
/// computation, at times up to 400 ms ahead, with searches of every device: the same
/// candidates, and among all of them the built-in policies choose the same device.
fn check(fleet: &Fleet, rng: &mut Rng) {
    let ac = &fleet.ac;
    ac.check_targets();
    ac.check_waiting();
    let live: Vec<_> = (ac.devices.iter())
        .filter_map(|d| d.session.as_ref().map(|s| s.id))
        .collect();
    let pick = |rng: &mut Rng| match rng.below(live.len() as u64 + 1) as usize {
        i if i < live.len() => live[i],
        _ => crate::wire::ids::SessionId::NONE,
    };
    let choice = |policy: &dyn Policy, found: &[super::Found]| {
        let candidates: Vec<Candidate<'_>> = (found.iter())
            .map(|&(d, load, priority)| Candidate {
                device: ac.registry.devices.get(d),
                priority,
                load,
            })
            .collect();
        let k = (!candidates.is_empty()).then(|| policy.choose("", &candidates));
        k.flatten().map(|k| found[k].0)
    };
    for comp in &ac.comps {
        for _ in 0..3 {
            let from = rng.below(ac.devices.len() as u64) as u32;
            let mut r = Recovery::new(from, pick(rng), fleet.now);
            r.tried = (0..rng.below(4)).map(|_| pick(rng)).collect();
            r.stalled = pick(rng);
            let required = match rng.below(2) {
                0 => AuthLevel::Unauthenticated,
                _ => AuthLevel::Authenticated,
            };
            let at = fleet.now + ms(rng.below(400) as u32);
            let indexed = ac.search(comp, &r, required, at);
            assert_eq!(
                indexed,
                ac.search_every_device(comp, &r, required, at, true)
            );
            assert!(indexed.fresh.len() <= MAX_CANDIDATES);
            let every = ac.search_every_device(comp, &r, required, at, false);
            for policy in [&PriorityPolicy as &dyn Policy, &LeastLoadedPolicy] {
                let chosen = choice(policy, indexed.candidates());
                assert_eq!(chosen, choice(policy, every.candidates()));
            }
        }
    }
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        8 => (any::<usize>(), any::<bool>(), any::<bool>())
            .prop_map(|(d, authenticated, slow)| Op::Join { d, authenticated, slow }),
        4 => any::<usize>().prop_map(Op::Hello),
        2 => Just(Op::HelloAll),
        3 => (1u64..700).prop_map(Op::Wait),
        2 => any::<usize>().prop_map(Op::Ack),
        1 => any::<usize>().prop_map(Op::Fail),
        1 => any::<usize>().prop_map(Op::Leave),
        1 => Just(Op::Restore),
    ];
    prop::collection::vec(op, 1..120)
}

fn registry() -> impl Strategy<Value = (Vec<DeviceGen>, Vec<CompGen>, u16)> {
    let device = (0u8..8, 1u16..5).prop_map(|(capabilities, max_hosted)| DeviceGen {
        capabilities,
        max_hosted,
    });
    let comp = (
        prop::option::weighted(0.8, any::<usize>()),
        prop_oneof![3 => Just(0u8), 1 => 0u8..8],
        prop_oneof![3 => Just(Vec::new()), 1 => prop::collection::vec(any::<usize>(), 1..5)],
    )
        .prop_map(|(home, requires, hosts)| CompGen {
            home,
            requires,
            hosts,
        });
    (
        prop::collection::vec(device, 1..60),
        prop::collection::vec(comp, 1..40),
        1u16..4,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn the_indexed_search_finds_what_a_search_of_every_device_finds(
        (devices, comps, max_morphs) in registry(),
        ops in ops(),
        seed in any::<u64>(),
    ) {
        let mut fleet = Fleet::new(config(&devices, &comps, max_morphs));
        let mut rng = Rng::new(seed);
        check(&fleet, &mut rng);
        for op in &ops {
            fleet.apply(op);
            check(&fleet, &mut rng);
        }
    }
}
