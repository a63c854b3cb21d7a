//! Guests that compute as long as their fuel allows, on the device agent's own process,
//! never make the device miss a HELLO: the real `pcxses-ac` and `pcxses-device` over UDP
//! at HELLO 100 ms, dead 300 ms, for a minute. A test binary of its own, since its guests
//! keep a core busy throughout.

use std::time::Duration;

use pcxses_tests::programs::{is, path, Setup, World};

/// Steps that use much of a call's 10 million fuel (a million turns of a loop, some 7 million fuel), then
/// count.
const HEAVY: &str = r#"(module (memory (export "memory") 1)
    (func (export "pcx_step") (result i32) (local i32)
      (local.set 0 (i32.const 1000000))
      (loop (local.set 0 (i32.sub (local.get 0) (i32.const 1))) (br_if 0 (local.get 0)))
      (i64.store (i32.const 0) (i64.add (i64.load (i32.const 0)) (i64.const 1)))
      (i32.const 0))
    (func (export "pcx_capture") (result i64) (i64.const 8))
    (func (export "pcx_restore_buffer") (param i32) (result i32) (i32.const 16))
    (func (export "pcx_restore") (param i32) (result i32) (i32.const 0))
    (func (export "pcx_render") (result i64) (i64.const 0)))"#;

/// A step that never ends: it runs out of fuel and is stopped.
const RUNAWAY: &str = r#"(module (memory (export "memory") 1)
    (func (export "pcx_step") (result i32) (loop (br 0)) (i32.const 0))
    (func (export "pcx_capture") (result i64) (i64.const 8))
    (func (export "pcx_restore_buffer") (param i32) (result i32) (i32.const 16))
    (func (export "pcx_restore") (param i32) (result i32) (i32.const 0))
    (func (export "pcx_render") (result i64) (i64.const 0)))"#;

#[test]
fn busy_and_runaway_guests_never_make_their_device_miss_a_hello() {
    let heavy = wat::parse_str(HEAVY).unwrap();
    let runaway = wat::parse_str(RUNAWAY).unwrap();
    let names = [
        "heavy-1", "heavy-2", "heavy-3", "heavy-4", "heavy-5", "heavy-6",
    ];
    let mut guests: Vec<(&str, &[u8])> = names.iter().map(|n| (*n, &heavy[..])).collect();
    guests.push(("runaway", &runaway[..]));
    let w = World::with(
        "udp",
        "starvation",
        Setup {
            dead_ms: Some(300),
            alpha_guests: &guests,
            ..Setup::default()
        },
    );
    let mut args = Vec::new();
    for (name, _) in &guests {
        args.push("--guest".to_string());
        args.push(format!(
            "{name}={}",
            path(&w.dir.join(format!("{name}.wasm")))
        ));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let alpha = w.device_with("alpha", &args);
    let failed = alpha.wait_for("the runaway guest to be stopped", |v| {
        is(v, "guest_failed") && v["computation"] == "runaway"
    });
    assert_eq!(failed["error"], "out of fuel");

    // A minute in which neither a death nor a fence shows up.
    let died = w.ac().wait_until_within(Duration::from_secs(60), |o| {
        o.lines.iter().any(|v| is(v, "device_failed"))
    });
    let deaths = w.ac().events(|v| is(v, "device_failed"));
    assert!(!died, "false deaths: {deaths:?}");
    let fenced = alpha.events(|v| is(v, "stop"));
    assert!(fenced.is_empty(), "alpha stopped computations: {fenced:?}");
    // The busy guests ran all along, each within its fuel.
    let failures = alpha.events(|v| is(v, "guest_failed"));
    assert_eq!(failures.len(), 1, "{failures:?}");
    for name in names {
        let stored = alpha.events(|v| is(v, "state_stored") && v["computation"] == name);
        assert!(stored.len() >= 10, "{name} stored {} states", stored.len());
    }
}
