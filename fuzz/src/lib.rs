//! The fuzz harness of the protocol machines: one AC and a few devices connected in
//! memory, driven by a structured [`script::Script`] of deliveries, losses, reorderings,
//! replays, forged bottles, time and commands, with the protocol's invariants checked
//! after every step (see [`world::World::step`]).
//!
//! A failing input, as hex, replays with
//! `xxd -r -p <<< HEX > input && cargo +nightly fuzz run machines input`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod forge;
pub mod invariants;
pub mod script;
pub mod twin;
pub mod world;

use script::Script;
use world::{World, MAX_STEPS};

/// Runs `script` to its end or its first broken invariant, which it describes.
pub fn run(script: &Script) -> Result<World, String> {
    let devices = if script.three_devices { 3 } else { 2 };
    let mut world = World::new(script.keyed, devices, script.split, script.auto_install);
    for (i, step) in script.steps.iter().take(MAX_STEPS).enumerate() {
        world
            .step(step)
            .map_err(|e| format!("step {i} ({step:?}): {e}"))?;
    }
    Ok(world)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcxses_core::controller::{ComputationId, Placement};
    use script::{Forged, NoncePick, SealPick, SessionPick, StatePick, Step, Target};

    fn script(keyed: bool, steps: Vec<Step>) -> Script {
        Script {
            keyed,
            three_devices: true,
            split: false,
            auto_install: true,
            steps,
        }
    }

    fn run_clean(rounds: usize) -> Vec<Step> {
        (0..rounds)
            .map(|_| Step::Run { rounds: 15, ms: 20 })
            .collect()
    }

    #[test]
    fn a_clean_network_joins_every_device_stores_state_and_migrates() {
        for keyed in [false, true] {
            let mut steps = run_clean(4);
            steps.push(Step::SetState {
                device: 0,
                computation: 0,
                state: StatePick::Large {
                    len: 3_000,
                    fill: 9,
                },
            });
            steps.extend(run_clean(4));
            steps.push(Step::Crash(0));
            steps.extend(run_clean(20));
            let world = run(&script(keyed, steps)).unwrap();
            assert!(!world.tainted());
            let ac = world.controller();
            let comp0 = ComputationId(0);
            assert_eq!(ac.lkgs(comp0).unwrap().0, vec![9; 3_000], "keyed {keyed}");
            assert!(
                matches!(ac.placement(comp0), Some(Placement::Running(d)) if d.0 != 0),
                "keyed {keyed}: {:?}",
                ac.placement(comp0)
            );
            assert_eq!(world.joined(), 2, "keyed {keyed}");
        }
    }

    #[test]
    fn a_forged_reject_with_a_seen_session_taints_only_unauthenticated_runs() {
        for keyed in [false, true] {
            let mut steps = run_clean(4);
            for n in 0..3 {
                steps.push(Step::Forge {
                    to: Target::Device(n),
                    bottle: Box::new(Forged::Reject {
                        session: SessionPick::Seen(n),
                        nonce: NoncePick::Raw([0; 8]),
                        // REJECT `Replaced`.
                        reason: 2,
                    }),
                    seal: SealPick::Plain,
                });
            }
            let world = run(&script(keyed, steps)).unwrap();
            assert_eq!(world.tainted(), !keyed);
        }
    }

    #[test]
    fn devices_that_crashed_or_restarted_are_all_in_session_after_a_clean_network() {
        for keyed in [false, true] {
            let mut steps = run_clean(4);
            steps.push(Step::Crash(0));
            steps.push(Step::Advance(5_000));
            steps.push(Step::Restart(0));
            steps.push(Step::Restart(1));
            // 30 s of clean network: the settle check runs at the end.
            steps.extend(run_clean(94));
            let world = run(&script(keyed, steps)).unwrap();
            assert_eq!(world.joined(), 3, "keyed {keyed}");
        }
    }
}
