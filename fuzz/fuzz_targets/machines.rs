//! An AC and two or three devices, unauthenticated or keyed, connected in memory and driven
//! by arbitrary sequences of deliveries, losses, reorderings, replays, forged bottles (plain
//! or sealed with a wrong or a right key), time and commands. After every step: a refused
//! bottle changed nothing, no computation runs on two live devices, every LKGS and install
//! carries a state some device set, and the AC's snapshot stays within its bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pcxses_fuzz::script::Script;

fuzz_target!(|script: Script| {
    if let Err(e) = pcxses_fuzz::run(&script) {
        panic!("{e}");
    }
});
