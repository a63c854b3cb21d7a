//! One failover: play, kill the device hosting the computation with SIGKILL, follow the AC
//! and the survivor until the computation runs on, and report what happened.

use std::collections::VecDeque;
use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::kind::{Kind, Summary};
use crate::world::{unhex, Who, World};

/// How a run goes.
pub struct Options {
    pub kind: Kind,
    /// The device killed; the computation moves to the other.
    pub victim: Who,
    /// How long to play before the kill.
    pub play: Duration,
    /// How long to watch the survivor after it resumed.
    pub after: Duration,
    pub output: Output,
}

/// What the demo prints while it runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The board redrawn in place, for a terminal.
    Live,
    /// Event lines, and the board before the kill and after the resume.
    Lines,
    /// Nothing.
    Quiet,
}

/// What happened in one failover.
pub struct Report {
    pub kind: Kind,
    pub from: Who,
    pub to: Who,
    /// From SIGKILL to the AC's verdict, as this program saw them.
    pub detected_ms: f64,
    /// From the last HELLO the AC had to its verdict, on the AC's clock.
    pub silence_ms: f64,
    /// From the verdict to the MORPH ack, on the AC's clock.
    pub morph_ms: f64,
    pub resumed: bool,
    pub state_bytes: usize,
    pub code_bytes: u64,
    pub stream_bytes: u64,
    pub before: Summary,
    pub after: Summary,
}

impl Report {
    pub fn json(&self, transport: &str, hello_ms: u32, dead_ms: u32) -> Value {
        json!({
            "computation": self.kind.computation(), "from": self.from.name(), "to": self.to.name(),
            "transport": transport, "hello_ms": hello_ms, "dead_ms": dead_ms,
            "detected_ms": round(self.detected_ms), "silence_ms": round(self.silence_ms),
            "morph_ms": round(self.morph_ms), "resumed": self.resumed,
            "state_bytes": self.state_bytes, "code_bytes": self.code_bytes, "stream_bytes": self.stream_bytes,
            "score_before": self.before.score, "score_after": self.after.score,
        })
    }

    /// Prints the report: one JSON object with `json`, else the text.
    pub fn show(&self, json: bool, transport: &str, hello_ms: u32, dead_ms: u32) {
        if json {
            println!("{}", self.json(transport, hello_ms, dead_ms));
        } else {
            self.print(hello_ms, dead_ms);
        }
    }

    pub fn print(&self, hello_ms: u32, dead_ms: u32) {
        let (c, from, to) = (self.kind.computation(), self.from.name(), self.to.name());
        println!("== What happened");
        println!("  devices send a HELLO every {hello_ms} ms and are dead after {dead_ms} ms without one");
        println!(
            "  {from} was killed with SIGKILL; {:.0} ms later the AC declared it dead ({:.0} ms after its last HELLO)",
            self.detected_ms, self.silence_ms
        );
        println!(
            "  MORPH of {c} to {to}: acknowledged {:.1} ms after the verdict",
            self.morph_ms
        );
        println!(
            "  shipped {} bytes of code and {} bytes of state under a signed manifest ({} bytes in the MORPH stream)",
            self.code_bytes, self.state_bytes, self.stream_bytes
        );
        println!("  before: {}", self.before.detail);
        println!("  after:  {}", self.after.detail);
        if self.resumed {
            println!("  {c} resumed on {to} from the state the AC acknowledged, and carries on");
        } else {
            println!("  {c} did NOT resume on {to} from the acknowledged state");
        }
    }
}

fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// Lines the demo types into the devices' standard input, for Chat.
const CHAT: [&str; 8] = [
    "ops: pump 3 pressure nominal",
    "field: valve 12 closed",
    "ops: copy, valve 12 closed",
    "field: battery at 81%",
    "ops: next check in five minutes",
    "field: gate 2 sensor flapping",
    "ops: logged, sending a technician",
    "field: all quiet on line 4",
];

/// Every how often a chat line is typed.
const CHAT_EVERY: Duration = Duration::from_millis(400);

/// What is on the screen.
struct Board {
    output: Output,
    title: String,
    host: &'static str,
    frame: String,
    log: VecDeque<String>,
    started: Instant,
}

impl Board {
    fn log(&mut self, line: String) {
        let line = format!("{:>7.3} s  {line}", self.started.elapsed().as_secs_f64());
        if self.output == Output::Lines {
            println!("{line}");
        }
        self.log.push_back(line);
        if self.log.len() > 8 {
            self.log.pop_front();
        }
        self.draw();
    }

    fn draw(&self) {
        if self.output != Output::Live {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\x1b[H\x1b[2J{} on {}\r\n\r\n", self.title, self.host);
        for line in self.frame.lines() {
            let _ = write!(out, "  {line}\r\n");
        }
        let _ = write!(out, "\r\n");
        for line in &self.log {
            let _ = write!(out, "{line}\r\n");
        }
        let _ = out.flush();
    }

    fn show_frame(&self) {
        if self.output == Output::Lines {
            println!("-- {} on {}", self.title, self.host);
            println!("{}", self.frame);
        }
    }
}

/// What the run saw so far.
#[derive(Default)]
struct Seen {
    /// The last state the victim was told the AC stored.
    acked: Option<Vec<u8>>,
    killed_at: Option<Instant>,
    verdict: Option<(Instant, Value)>,
    completed: Option<Value>,
    install: Option<(Instant, Value)>,
    /// The survivor's latest state of the computation after the install.
    latest: Option<Vec<u8>>,
}

pub fn run(world: &mut World, opts: &Options) -> Result<Report, String> {
    let kind = opts.kind;
    let computation = kind.computation();
    let victim = opts.victim;
    let survivor = match victim {
        Who::PacMan => Who::Runner,
        _ => Who::PacMan,
    };
    let mut board = Board {
        output: opts.output,
        title: format!("PCXSES demo: {computation}"),
        host: victim.name(),
        frame: String::new(),
        log: VecDeque::new(),
        started: Instant::now(),
    };
    let mut seen = Seen::default();
    let mut said = 0usize;
    let mut next_say = Instant::now() + CHAT_EVERY;
    let play_until = Instant::now() + opts.play;
    let mut deadline = World::deadline();
    loop {
        // Chat lines go to both devices; only a Chat guest takes them.
        if Instant::now() >= next_say {
            let line = CHAT[said % CHAT.len()];
            said += 1;
            for who in [Who::PacMan, Who::Runner] {
                if let Some(d) = world.device(who) {
                    d.say(line);
                }
            }
            next_say += CHAT_EVERY;
        }
        let Some((who, v)) = world.next_event(next_say.min(deadline)) else {
            if Instant::now() >= deadline {
                return Err(format!("timed out; the run saw {}", seen.describe()));
            }
            continue;
        };
        let event = v["event"].as_str().unwrap_or("");
        let ours = v["computation"] == computation;
        match (who, event) {
            (w, "frame") if ours && w == board_host(&seen, victim, survivor) => {
                board.frame = v["text"].as_str().unwrap_or("").to_string();
                board.host = w.name();
                board.draw();
            }
            (w, "state_stored") if ours && w == victim && seen.killed_at.is_none() => {
                seen.acked = v["state"].as_str().and_then(unhex);
                if Instant::now() >= play_until {
                    // Kill right after an acknowledgement: that state is the LKGS.
                    board.show_frame();
                    if let Some(d) = world.device(victim) {
                        d.kill();
                    }
                    seen.killed_at = Some(Instant::now());
                    board.log(format!("{} killed with SIGKILL", victim.name()));
                    deadline = World::deadline();
                }
            }
            (w, "state_stored") if ours && w == survivor && seen.install.is_some() => {
                seen.latest = v["state"].as_str().and_then(unhex);
            }
            (w, "install") if ours && w == survivor => {
                board.log(format!(
                    "{} installed {computation}: {} bytes of code, {} bytes of state",
                    w.name(),
                    v["code_bytes"],
                    v["lkgs_bytes"]
                ));
                seen.install = Some((Instant::now(), v));
            }
            (Who::Ac, "device_failed") if v["device"] == victim.name() => {
                let silence =
                    v["at_ms"].as_f64().unwrap_or(0.0) - v["last_hello_ms"].as_f64().unwrap_or(0.0);
                board.log(format!(
                    "AC: {} is dead, no HELLO for {silence:.0} ms",
                    victim.name()
                ));
                seen.verdict = Some((Instant::now(), v));
            }
            (Who::Ac, "migration_started") if ours => {
                board.log(format!(
                    "AC: MORPH {computation} -> {} (attempt {})",
                    str(&v["to"]),
                    v["attempt"]
                ));
            }
            (Who::Ac, "migration_failed") if ours => {
                board.log(format!(
                    "AC: MORPH {computation} -> {} failed: {}",
                    str(&v["to"]),
                    str(&v["reason"])
                ));
            }
            (Who::Ac, "migration_completed") if ours => {
                let ms = v["acked_ms"].as_f64().unwrap_or(0.0)
                    - v["detected_ms"].as_f64().unwrap_or(0.0);
                board.log(format!(
                    "AC: {computation} runs on {}, MORPH ack {ms:.1} ms after the verdict",
                    str(&v["to"])
                ));
                seen.completed = Some(v);
            }
            (Who::Ac, "device_joined") => board.log(format!("AC: {} joined", str(&v["device"]))),
            (w, "morph_refused" | "guest_failed") => {
                board.log(format!("{}: {event} {}", w.name(), v));
            }
            _ => {}
        }
        let watched = seen
            .install
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() >= opts.after);
        if watched && seen.completed.is_some() && seen.latest.is_some() {
            break;
        }
    }
    board.show_frame();
    seen.report(kind, victim, survivor)
}

/// Whose frames of the computation the board shows: the victim's until the survivor
/// installed it.
fn board_host(seen: &Seen, victim: Who, survivor: Who) -> Who {
    if seen.install.is_some() {
        survivor
    } else {
        victim
    }
}

fn str(v: &Value) -> &str {
    v.as_str().unwrap_or("?")
}

impl Seen {
    fn describe(&self) -> String {
        format!(
            "acked state: {}, kill: {}, verdict: {}, install: {}, migration completed: {}",
            self.acked.is_some(),
            self.killed_at.is_some(),
            self.verdict.is_some(),
            self.install.is_some(),
            self.completed.is_some()
        )
    }

    fn report(self, kind: Kind, from: Who, to: Who) -> Result<Report, String> {
        let missing = || format!("the run ended early; it saw {}", self.describe());
        let (
            Some(acked),
            Some(killed),
            Some((verdict_at, verdict)),
            Some(completed),
            Some((_, install)),
            Some(latest),
        ) = (
            &self.acked,
            self.killed_at,
            &self.verdict,
            &self.completed,
            &self.install,
            &self.latest,
        )
        else {
            return Err(missing());
        };
        let lkgs = install["lkgs"]
            .as_str()
            .and_then(unhex)
            .ok_or("the install carried no state")?;
        let before = kind
            .summary(acked)
            .ok_or("the acknowledged state does not decode")?;
        let after = kind
            .summary(&lkgs)
            .ok_or("the installed state does not decode")?;
        // The AC may have stored one state more than the victim lived to hear of; it must
        // then be a later one.
        let from_acked =
            lkgs == *acked || (after.tick > before.tick && kind.continues(acked, &lkgs));
        let ms = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
        Ok(Report {
            kind,
            from,
            to,
            detected_ms: verdict_at.duration_since(killed).as_secs_f64() * 1000.0,
            silence_ms: ms(verdict, "at_ms") - ms(verdict, "last_hello_ms"),
            morph_ms: ms(completed, "acked_ms") - ms(completed, "detected_ms"),
            resumed: from_acked && completed["to"] == to.name() && kind.continues(&lkgs, latest),
            state_bytes: lkgs.len(),
            code_bytes: install["code_bytes"].as_u64().unwrap_or(0),
            stream_bytes: completed["stream_bytes"].as_u64().unwrap_or(0),
            before,
            after,
        })
    }
}
