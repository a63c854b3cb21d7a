//! The PCXSES failover demo.
//!
//! `demo` builds the two guests (PacMan and Chat) for WebAssembly and the `pcxses-ac` and
//! `pcxses-device` programs, writes an AC configuration with a fresh code-signing key, and
//! starts an AC and two devices on 127.0.0.1 as separate processes: `pacman` runs PacMan
//! and `runner` runs Chat. It shows the PacMan board live,
//! kills the pacman device with SIGKILL, and shows the same game going on at the runner,
//! which received the code and the last known good state in a signed MORPH. Then it prints
//! what happened: the intervals, detection time, MORPH duration, bytes shipped and state
//! size (`--json`: one JSON object). `--reverse` kills the runner instead, and Chat moves to
//! the pacman device. `--link-mbit` puts the devices behind a userspace link of that
//! bandwidth; `--runs` repeats the failover and ends with the medians. `--mcu` makes the
//! runner the device firmware on an emulated Cortex-M4 board (QEMU), its serial line
//! bridged to the AC (`--baud` paces it): PacMan moves from Linux to the board, and once
//! the pacman device is back, from the board to Linux when QEMU is killed.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod failover;
mod kind;
mod world;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser};
use pcxses_demo::link::{Link, LinkShape};
use pcxses_demo::mcu;
use pcxses_program::transport::Transport;
use serde_json::json;

use failover::{Options, Output, Report};
use kind::Kind;
use world::{Guests, Programs, Settings, Who, World, BOARD_DEAD_MS, BOARD_HELLO_MS};

#[derive(Parser)]
#[command(
    version,
    about = "PCXSES failover demo: PacMan survives the death of its device"
)]
struct Cli {
    #[command(flatten)]
    demo: DemoArgs,
}

#[derive(Args)]
struct DemoArgs {
    /// Print one JSON object per failover instead of the board.
    #[arg(long)]
    json: bool,
    /// Kill the runner instead; the pacman device takes Chat over.
    #[arg(long)]
    reverse: bool,
    /// The transport.
    #[arg(long, value_enum, default_value = "udp")]
    transport: Transport,
    /// The devices' HELLO interval.
    #[arg(long, default_value_t = 100)]
    hello_ms: u32,
    /// The devices' dead interval.
    #[arg(long, default_value_t = 300)]
    dead_ms: u32,
    /// The computations' tick.
    #[arg(long, default_value_t = 100)]
    tick_ms: u64,
    /// Play this long before the kill.
    #[arg(long, default_value_t = 4000)]
    play_ms: u64,
    /// Watch the survivor this long after it resumed.
    #[arg(long, default_value_t = 3000)]
    after_ms: u64,
    /// Put the devices behind a userspace link of this many Mbit/s each way.
    #[arg(long)]
    link_mbit: Option<f64>,
    /// The one-way delay of that link.
    #[arg(long, default_value_t = 0)]
    link_delay_ms: u64,
    /// Run the failover this many times, with a fresh AC and devices each time, and end
    /// with the medians.
    #[arg(long, default_value_t = 1)]
    runs: u32,
    /// The runner is the device firmware on an emulated Cortex-M4 board in QEMU, its
    /// serial line bridged to the AC: PacMan moves to the board, then back to Linux.
    #[arg(long, conflicts_with = "reverse")]
    mcu: bool,
    /// With `--mcu`: pace the board's serial line to this many bits per second (QEMU's
    /// UART is as fast as the emulator).
    #[arg(long, requires = "mcu")]
    baud: Option<u32>,
}

fn main() -> ExitCode {
    pcxses_program::logging::init();
    let cli = Cli::parse();
    match demo(&cli.demo) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn demo(args: &DemoArgs) -> Result<(), String> {
    let output = if args.json {
        Output::Quiet
    } else if args.runs == 1 && std::io::stdout().is_terminal() {
        Output::Live
    } else {
        Output::Lines
    };
    if args.mcu {
        mcu::qemu_available()?;
        if args.transport != Transport::Udp {
            return Err("--mcu: the board's bridge speaks UDP: use --transport udp".into());
        }
    }
    eprintln!("demo: building the guests for WebAssembly");
    let guests = Guests::build()?;
    eprintln!("demo: building the AC and the device agent");
    if args.mcu {
        eprintln!("demo: building the device firmware for a Cortex-M4");
    }
    let programs = Programs::build(args.mcu)?;
    let transport = args.transport.name();
    let (kind, victim) = if args.reverse {
        (Kind::Chat, Who::Runner)
    } else {
        (Kind::PacMan, Who::PacMan)
    };
    let mut opts = Options {
        kind,
        victim,
        play: Duration::from_millis(args.play_ms),
        after: Duration::from_millis(args.after_ms),
        output,
    };
    let (mut reports, mut back) = (Vec::new(), Vec::new());
    for _ in 0..args.runs {
        let settings = Settings {
            transport,
            hello_ms: args.hello_ms,
            dead_ms: args.dead_ms,
            tick_ms: args.tick_ms,
            board: args.mcu.then_some(args.baud),
        };
        let mut world = World::new(&guests, &programs, settings)?;
        let link = match args.link_mbit {
            Some(mbit) => {
                let shape = LinkShape {
                    rate_bps: Some((mbit * 1e6) as u64),
                    delay: Duration::from_millis(args.link_delay_ms),
                    ..LinkShape::default()
                };
                Some(
                    Link::start(args.transport, world.ac_addr, shape, None)
                        .map_err(|e| e.to_string())?,
                )
            }
            None => None,
        };
        let ac = link.as_ref().map_or(world.ac_addr, Link::local_addr);
        world.start_devices(ac)?;
        opts.victim = victim;
        let (hello_ms, dead_ms) = (args.hello_ms, args.dead_ms);
        let report = failover::run(&mut world, &opts)?;
        report.show(args.json, transport, hello_ms, dead_ms);
        reports.push(report);
        if args.mcu {
            // Back from the board: the pacman device returns, and QEMU is killed.
            world.start_device(Who::PacMan, ac)?;
            world.wait_for("the pacman device to join again", |who, v| {
                who == Who::PacMan && v["event"] == "joined"
            })?;
            opts.victim = Who::Runner;
            let report = failover::run(&mut world, &opts)?;
            report.show(args.json, transport, BOARD_HELLO_MS, BOARD_DEAD_MS);
            back.push(report);
        }
    }
    if args.runs > 1 {
        for (what, reports) in [("", &reports), (" back from the board", &back)] {
            if reports.is_empty() {
                continue;
            }
            let summary = summary(reports);
            if args.json {
                println!("{summary}");
            } else {
                println!("== {} runs{what}: {summary}", args.runs);
            }
        }
    }
    reports.extend(back);
    let failed = reports.iter().filter(|r| !r.resumed).count();
    if failed > 0 {
        return Err(format!("{failed} of {} runs did not resume", reports.len()));
    }
    Ok(())
}

/// Medians, minima and maxima over the runs.
fn summary(reports: &[Report]) -> serde_json::Value {
    let stats = |f: fn(&Report) -> f64| {
        let mut v: Vec<f64> = reports.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        let median = if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        };
        let round = |ms: f64| (ms * 1000.0).round() / 1000.0;
        json!({"median": round(median), "min": round(v[0]), "max": round(v[v.len() - 1])})
    };
    json!({
        "runs": reports.len(),
        "resumed": reports.iter().filter(|r| r.resumed).count(),
        "detected_ms": stats(|r| r.detected_ms),
        "morph_ms": stats(|r| r.morph_ms),
    })
}
