//! A microcontroller in the area: the device firmware in QEMU (Cortex-M4, `mps2-an386`),
//! its UART carried by `pcxses-bridge` to a real `pcxses-ac`, beside Linux devices. PacMan
//! moves from a killed Linux device to the board and plays on there, then back to a Linux
//! device when QEMU is killed, its state byte for byte what the AC acknowledged each time;
//! and garbage and flipped bits on the board's serial line, once it joined, cost only the
//! frames they hit.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pcxses_demo::mcu::{Mcu, Provision, CORTEX_M0_PLUS, CORTEX_M4};
use pcxses_guest_pacman::game::Game;
use pcxses_tests::mcu::{bridge, firmware, Board};
use pcxses_tests::noise::Noise;
use pcxses_tests::programs::{self, is, path, tick_and_score, unhex, Proc, Setup, World};
use serde_json::Value;
use serialport::{SerialPort, TTYPort};

/// The PacMan guest, built once for the whole file.
fn pacman() -> &'static [u8] {
    static MODULE: OnceLock<Vec<u8>> = OnceLock::new();
    MODULE.get_or_init(|| programs::build_guest("pcxses-guest-pacman"))
}

/// What the board may use of its heap in the steady state, and of its stack at most.
const HEAP_BUDGET: u64 = 4 * 1024;
const STACK_BUDGET: u64 = 3 * 1024;

/// The HELLO and dead intervals the board proposes.
const BOARD_HELLO_MS: u32 = 250;
const BOARD_DEAD_MS: u32 = 5_000;

/// Gamma's provisioning: the world's code-signing key if it signs.
fn gamma(w: &World) -> Provision {
    let key = std::fs::read_to_string(w.dir.join("code-signing.pub"))
        .ok()
        .map(|hex| unhex(hex.trim()).try_into().expect("a 32-byte key"));
    Provision {
        name: "gamma".into(),
        psk: None,
        code_key: key,
        seed: std::process::id().into(),
        hello_ms: BOARD_HELLO_MS,
        dead_ms: BOARD_DEAD_MS,
        tick_ms: 50,
        frames: 0,
    }
}

/// PacMan's state after `tick` ticks from a new game: every state a device reports must be
/// this, as the game takes no input here.
fn replayed(tick: u32) -> Vec<u8> {
    let mut game = Game::default();
    for _ in 0..tick {
        game.step();
    }
    let mut state = Vec::new();
    game.encode(&mut state);
    state
}

/// The LKGS of `install`, checked: the state of its tick, and the very bytes of the
/// `state_stored` of the same version on the device it ran on, if that one saw it.
fn checked_lkgs(install: &Value, from: &Proc) -> Vec<u8> {
    let lkgs = unhex(install["lkgs"].as_str().expect("an LKGS"));
    assert_eq!(lkgs.len(), 64, "{install}");
    let (tick, _) = tick_and_score(&lkgs);
    assert_eq!(
        lkgs,
        replayed(tick),
        "the LKGS is a state PacMan passed through"
    );
    let version = install["lkgs_version"].as_u64().expect("a version");
    // The board remembers its last few states only: a late ack may come without one.
    let acked = from.events(|v| {
        is(v, "state_stored")
            && v["computation"] == "counter-alpha"
            && v["version"].as_u64() == Some(version)
            && v["state"].is_string()
    });
    if let Some(acked) = acked.first() {
        assert_eq!(
            unhex(acked["state"].as_str().unwrap()),
            lkgs,
            "the LKGS is the state the AC acknowledged as version {version}"
        );
    }
    lkgs
}

/// Waits until `d` reports PacMan `ticks` ticks past `lkgs`, each state it was told the
/// AC stored being PacMan's own at its tick, its score never below the LKGS's.
fn plays_on(d: &Proc, lkgs: &[u8], ticks: u32) {
    let (tick, score) = tick_and_score(lkgs);
    let later = d.wait_for("PacMan to play on", |v| {
        is(v, "state_stored")
            && v["computation"] == "counter-alpha"
            && v["state"]
                .as_str()
                .is_some_and(|s| tick_and_score(&unhex(s)).0 >= tick + ticks)
    });
    let state = unhex(later["state"].as_str().unwrap());
    let (now, now_score) = tick_and_score(&state);
    assert_eq!(state, replayed(now));
    assert!(now_score >= score, "score {now_score} after {score}");
}

#[test]
fn pacman_moves_from_linux_to_the_board_and_back_with_the_acknowledged_state() {
    let w = World::with(
        "udp",
        "mcu",
        Setup {
            signed: true,
            alpha_module: Some(pacman()),
            hello_ms: Some(100),
            dead_ms: Some(1_000),
            ..Setup::default()
        },
    );
    let image = firmware(CORTEX_M4, &["signing", "wasm"]);
    let board = Board::boot(&w, CORTEX_M4, &image, &gamma(&w));
    let _bridge = bridge(&board.pty, &w.addr, &[]);
    let key = w.dir.join("code-signing.pub");
    let key = path(&key);
    let module = format!("counter-alpha={}", path(&w.dir.join("alpha.wasm")));
    let alpha = w.device_with("alpha", &["--code-key", key, "--guest", &module]);
    let beta = w.device_with("beta", &["--code-key", key]);
    board
        .qemu
        .wait_for("the board to join", |v| is(v, "joined"));
    beta.wait_for("beta to join", |v| is(v, "joined"));
    alpha.wait_for("PacMan's state at the AC", |v| {
        is(v, "state_stored")
            && v["computation"] == "counter-alpha"
            && v["state"]
                .as_str()
                .is_some_and(|s| tick_and_score(&unhex(s)).0 >= 20)
    });

    // Linux to the board: alpha dies; `counter-alpha` may move to gamma first.
    alpha.signal("KILL");
    alpha.wait_closed();
    let install = board.qemu.wait_for("PacMan on the board", |v| {
        is(v, "install") && v["computation"] == "counter-alpha"
    });
    assert!(install.get("refused").is_none(), "{install}");
    assert_eq!(install["replaces"], "alpha");
    let lkgs = checked_lkgs(&install, &alpha);
    let first_tick = tick_and_score(&lkgs).0;
    w.ac().wait_for("the migration to the board", |v| {
        is(v, "migration_completed") && v["computation"] == "counter-alpha" && v["to"] == "gamma"
    });
    plays_on(&board.qemu, &lkgs, 20);

    if let Some(memory) = board.qemu.events(|v| is(v, "memory")).pop() {
        println!("running PacMan: {memory}");
    }

    // The board to Linux: QEMU dies; beta is the only host left.
    board.qemu.signal("KILL");
    board.qemu.wait_closed();
    let back = beta.wait_for("PacMan back on Linux", |v| {
        is(v, "install") && v["computation"] == "counter-alpha"
    });
    assert_eq!(back["replaces"], "gamma");
    let lkgs = checked_lkgs(&back, &board.qemu);
    assert!(
        tick_and_score(&lkgs).0 >= first_tick + 20,
        "the board's ticks came back"
    );
    plays_on(&beta, &lkgs, 20);
    w.ac().wait_for("the migration back", |v| {
        is(v, "migration_completed") && v["computation"] == "counter-alpha" && v["to"] == "beta"
    });
}

/// Boots the firmware for `mcu` (the ARMv6-M image, for Cortex-M0+ parts, runs on QEMU's
/// Cortex-M3 board) without PSK or signatures as gamma, moves alpha's counter
/// (4,000 bytes of code) to it, and checks the heap in the steady state and the deepest
/// stack against the budgets.
fn keeps_within_its_memory_budget(mcu: Mcu, test: &str) {
    let w = World::new("udp", test, 4_000);
    let image = firmware(mcu, &[]);
    let board = Board::boot(&w, mcu, &image, &gamma(&w));
    let _bridge = bridge(&board.pty, &w.addr, &[]);
    let alpha = w.device("alpha");
    board
        .qemu
        .wait_for("the board to join", |v| is(v, "joined"));
    alpha.wait_for("alpha's state", |v| is(v, "state_stored"));
    alpha.signal("KILL");
    let install = board.qemu.wait_for("counter-alpha on the board", |v| {
        is(v, "install") && v["computation"] == "counter-alpha"
    });
    assert_eq!(install["code_bytes"], 4_000);
    // Steady again: both counters acknowledged over several HELLO intervals; then three
    // seconds of `memory` lines, each with the heap's high-water mark of its second.
    let installed = install["count"]
        .as_u64()
        .expect("the count it resumes from");
    board
        .qemu
        .wait_for("counter-alpha acknowledged on the board", |v| {
            is(v, "state_stored")
                && v["computation"] == "counter-alpha"
                && v["count"].as_u64().is_some_and(|c| c > installed + 40)
        });
    let seen = board.qemu.seen();
    let steady = |o: &pcxses_tests::programs::Output| -> Vec<Value> {
        (o.lines[seen..].iter())
            .filter(|v| is(v, "memory"))
            .cloned()
            .collect()
    };
    board
        .qemu
        .wait_until("three seconds of memory lines", |o| steady(o).len() >= 3);
    let lines = steady(&board.qemu.output.0.lock().unwrap());
    let most = |key: &str| lines.iter().filter_map(|v| v[key].as_u64()).max().unwrap();
    println!("{}: {lines:?}", mcu.target);
    assert!(
        most("heap_recent_peak") <= HEAP_BUDGET,
        "the heap's high-water mark in the steady state: {lines:?}"
    );
    assert!(
        most("stack_peak") <= STACK_BUDGET,
        "deepest stack: {lines:?}"
    );
    assert!(
        most("heap_peak") <= HEAP_BUDGET + 4_000 + 2 * 1_200,
        "the MORPH's stream and its chunks on top: {lines:?}"
    );
}

#[test]
fn a_cortex_m4_keeps_within_its_memory_budget_while_it_receives_a_morph() {
    keeps_within_its_memory_budget(CORTEX_M4, "mcu_memory_m4");
}

#[test]
fn armv6m_code_keeps_within_its_memory_budget_while_it_receives_a_morph() {
    keeps_within_its_memory_budget(CORTEX_M0_PLUS, "mcu_memory_m0");
}

/// Whether the relays spoil what they carry, and whether they stop.
#[derive(Default)]
struct Relays {
    noisy: AtomicBool,
    stop: AtomicBool,
}

/// Carries bytes between two ends of a line, spoiling some while `relays.noisy`, until
/// `relays.stop`.
fn noisy_relay(
    mut from: Box<dyn SerialPort>,
    mut to: Box<dyn SerialPort>,
    seed: u64,
    relays: Arc<Relays>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut noise = Noise(seed);
        let mut buf = [0u8; 256];
        while !relays.stop.load(Ordering::Relaxed) {
            match from.read(&mut buf) {
                Ok(n) if n > 0 && relays.noisy.load(Ordering::Relaxed) => {
                    let _ = to.write_all(&noise.spoil(&buf[..n]));
                }
                Ok(n) => {
                    let _ = to.write_all(&buf[..n]);
                }
                _ => {}
            }
        }
    })
}

#[test]
fn garbage_and_flipped_bits_on_the_boards_line_cost_only_the_frames_they_hit() {
    let w = World::with(
        "udp",
        "mcu_noise",
        Setup {
            hello_ms: Some(100),
            dead_ms: Some(1_000),
            ..Setup::default()
        },
    );
    let image = firmware(CORTEX_M4, &[]);
    let board = Board::boot(&w, CORTEX_M4, &image, &gamma(&w));
    // The line: QEMU's pseudo-terminal, a noisy relay both ways, a pseudo-terminal pair
    // whose other end the bridge opens.
    let open = |p: &str| {
        serialport::new(p, 115_200)
            .timeout(Duration::from_millis(5))
            .open_native()
            .expect("open the line")
    };
    let board_end = open(board.pty.to_str().unwrap());
    let (relay_end, bridge_end) = TTYPort::pair().expect("a pseudo-terminal pair");
    let bridge_path = bridge_end.name().expect("the pair's name");
    let line = Arc::new(Relays::default());
    let relays = [
        noisy_relay(
            Box::new(board_end.try_clone_native().unwrap()),
            Box::new(relay_end.try_clone_native().unwrap()),
            1,
            line.clone(),
        ),
        noisy_relay(Box::new(relay_end), Box::new(board_end), 2, line.clone()),
    ];
    let bridge = bridge(std::path::Path::new(&bridge_path), &w.addr, &[]);

    // Joined on a clean line, then forty HELLO intervals of the board through the noise:
    // its counter counts every 50 ms.
    board
        .qemu
        .wait_for("the board to join", |v| is(v, "joined"));
    line.noisy.store(true, Ordering::Relaxed);
    let counted = |v: &Value, key: &str| v[key].as_u64().unwrap_or(0);
    let count = u64::from(40 * BOARD_HELLO_MS / 50);
    board
        .qemu
        .wait_for("the board's counter at 40 HELLOs", |v| {
            is(v, "state_stored")
                && v["computation"] == "counter-gamma"
                && counted(v, "count") >= count
        });
    board
        .qemu
        .wait_for("the board to count dropped frames", |v| {
            is(v, "memory") && counted(v, "dropped") > 0 && counted(v, "frames") >= 40
        });
    bridge.wait_for("the bridge to count dropped frames", |v| {
        is(v, "serial") && counted(v, "dropped") > 0 && counted(v, "frames") >= 40
    });
    line.stop.store(true, Ordering::Relaxed);
    for r in relays {
        r.join().unwrap();
    }

    let ac = w.ac();
    let gamma = ac.events(|v| v["device"] == "gamma");
    let board_side = board
        .qemu
        .events(|v| !is(v, "state_stored") && !is(v, "memory"));
    assert_eq!(
        gamma.iter().filter(|v| is(v, "device_joined")).count(),
        1,
        "one session all along: the AC saw {gamma:?}; the board {board_side:?}"
    );
    assert!(
        ac.events(|v| is(v, "device_failed")).is_empty(),
        "no false death"
    );
    assert_eq!(board.qemu.events(|v| is(v, "joined")).len(), 1);
    assert!(
        board.qemu.events(|v| is(v, "stop")).is_empty(),
        "never fenced"
    );
}
