//! The failover demo, run as a user runs it (`--json`), both ways.

use std::process::Command;

use serde_json::Value;

fn demo(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(["--json", "--play-ms", "1500", "--after-ms", "800"])
        .args(args)
        .output()
        .expect("the demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().expect("a report")).expect("JSON")
}

fn ms(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(-1.0)
}

#[test]
fn pacman_resumes_on_the_runner_with_the_same_game() {
    let r = demo(&[]);
    assert_eq!(
        [&r["computation"], &r["from"], &r["to"]],
        ["pacman", "pacman", "runner"],
        "{r}"
    );
    assert_eq!(r["resumed"], true, "{r}");
    assert_eq!(r["state_bytes"], 64);
    assert!(r["code_bytes"].as_u64().unwrap() > 1_000, "{r}");
    assert!(r["score_before"].as_u64().unwrap() > 0, "{r}");
    assert!(
        r["score_after"].as_u64() >= r["score_before"].as_u64(),
        "{r}"
    );
    // Death is declared only once the dead interval passed without a HELLO.
    assert!(ms(&r, "silence_ms") >= ms(&r, "dead_ms") - 1.0, "{r}");
    assert!(
        ms(&r, "detected_ms") > 0.0 && ms(&r, "morph_ms") > 0.0,
        "{r}"
    );
}

#[test]
fn chat_moves_the_other_way_over_tcp_through_a_10_mbit_link() {
    let r = demo(&["--reverse", "--transport", "tcp", "--link-mbit", "10"]);
    assert_eq!(
        [&r["computation"], &r["from"], &r["to"]],
        ["chat", "runner", "pacman"],
        "{r}"
    );
    assert_eq!(r["resumed"], true, "{r}");
    // Chat's "score" is the lines it recorded: typed every 400 ms while it played.
    assert!(r["score_before"].as_u64().unwrap() >= 2, "{r}");
    assert!(
        r["score_after"].as_u64() >= r["score_before"].as_u64(),
        "{r}"
    );
    assert_eq!(r["transport"], "tcp");
}
