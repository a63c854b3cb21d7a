//! The programs as processes, for the end-to-end suites (`tests/programs_*.rs`): the
//! `pcxses-ac`, `pcxses-device`, `pcxses-attack` and `pcxses-load` executables, built once
//! per test binary; their processes with their JSON event lines; and a world of an AC and
//! its devices, configured in a directory of its own.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::events_doc::{Catalogue, Program};
use pcxses_ac::repository;
use pcxses_core::wire::Bottle;
use pcxses_core::Limits;
use pcxses_demo::artifacts;
use pcxses_demo::link::{Direction, Link, LinkShape, Tap};
use pcxses_program::keys;
use pcxses_program::transport::Transport;
use serde_json::Value;

/// How long a test waits for an event.
pub const WAIT: Duration = Duration::from_secs(20);

/// The programs' executables: `pcxses-ac`, `pcxses-device`, `pcxses-attack`,
/// `pcxses-load` and `pcxses-bridge`, built for this test's profile the first time one is
/// asked for.
fn executables() -> &'static [PathBuf] {
    static EXECUTABLES: OnceLock<Vec<PathBuf>> = OnceLock::new();
    EXECUTABLES.get_or_init(|| {
        let programs = [
            "pcxses-ac",
            "pcxses-device",
            "pcxses-attack",
            "pcxses-load",
            "pcxses-bridge",
        ];
        artifacts::programs(&programs).expect("the programs build")
    })
}

/// The `pcxses-ac` executable.
pub fn ac_executable() -> &'static Path {
    &executables()[0]
}

/// The `pcxses-device` executable.
pub fn device_executable() -> &'static Path {
    &executables()[1]
}

/// The `pcxses-attack` executable.
pub fn attack_executable() -> &'static Path {
    &executables()[2]
}

/// The `pcxses-load` executable.
pub fn load_executable() -> &'static Path {
    &executables()[3]
}

/// The `pcxses-bridge` executable.
pub fn bridge_executable() -> &'static Path {
    &executables()[4]
}

/// What a process printed so far, and whether its stdout closed.
#[derive(Default)]
pub struct Output {
    /// The JSON lines, in the order printed.
    pub lines: Vec<Value>,
    /// When each of `lines` was read, on this process's clock: it orders the lines of
    /// several processes.
    pub received: Vec<Instant>,
    /// Whether its stdout closed.
    pub closed: bool,
    /// Its log: the lines it wrote to stderr, and those on stdout that are not JSON.
    pub log: Vec<String>,
    /// Its events that `docs/EVENTS.md` does not describe, each with why: the test fails
    /// when the process is dropped.
    pub undocumented: Vec<String>,
}

/// A process whose stdout JSON lines are collected; killed when dropped.
pub struct Proc {
    /// The process.
    pub child: Child,
    /// What it printed, with a condition variable notified at each line.
    pub output: Arc<(Mutex<Output>, Condvar)>,
}

impl Proc {
    /// Starts `cmd` with its stdout and its stderr collected. The events of `pcxses-ac` and
    /// `pcxses-device` (run with `--events`) are checked against `docs/EVENTS.md`.
    pub fn spawn(cmd: &mut Command) -> Proc {
        let program = printing_events(cmd);
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let output = Arc::new((Mutex::new(Output::default()), Condvar::new()));
        let sink = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.0.lock().unwrap().log.push(line);
                sink.1.notify_all();
            }
        });
        let sink = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    let undocumented =
                        program.and_then(|p| Catalogue::documented().check(p, &v).err());
                    let mut out = sink.0.lock().unwrap();
                    out.undocumented.extend(undocumented);
                    out.lines.push(v);
                    out.received.push(Instant::now());
                } else {
                    sink.0.lock().unwrap().log.push(line);
                }
                sink.1.notify_all();
            }
            sink.0.lock().unwrap().closed = true;
            sink.1.notify_all();
        });
        Proc { child, output }
    }

    /// Sends the process signal `sig` (`STOP`, `TERM`, …) with `kill`.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(ok.success(), "kill -{sig}");
    }

    /// Events so far matching `f`.
    pub fn events(&self, f: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.output
            .0
            .lock()
            .unwrap()
            .lines
            .iter()
            .filter(|v| f(v))
            .cloned()
            .collect()
    }

    /// Events so far matching `f`, each with the time it was read.
    pub fn stamped(&self, f: impl Fn(&Value) -> bool) -> Vec<(Instant, Value)> {
        let out = self.output.0.lock().unwrap();
        out.lines
            .iter()
            .zip(&out.received)
            .filter(|(v, _)| f(v))
            .map(|(v, at)| (*at, v.clone()))
            .collect()
    }

    /// How many lines the process printed so far.
    pub fn seen(&self) -> usize {
        self.output.0.lock().unwrap().lines.len()
    }

    /// Waits until `done` holds of the output, at most [`WAIT`].
    pub fn wait_until(&self, what: &str, done: impl Fn(&Output) -> bool) {
        if !self.wait_until_within(WAIT, &done) {
            let seen = format!("{:?}", self.output.0.lock().unwrap().lines);
            panic!("timed out waiting for {what}; saw {seen}");
        }
    }

    /// Waits until `done` holds of the output, at most `within`; whether it does.
    pub fn wait_until_within(&self, within: Duration, done: impl Fn(&Output) -> bool) -> bool {
        let deadline = Instant::now() + within;
        let (lock, cvar) = &*self.output;
        let mut out = lock.lock().unwrap();
        while !done(&out) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            out = cvar.wait_timeout(out, left).unwrap().0;
        }
        true
    }

    /// The lines of its log so far that contain `text`.
    pub fn logged(&self, text: &str) -> Vec<String> {
        let out = self.output.0.lock().unwrap();
        out.log
            .iter()
            .filter(|l| l.contains(text))
            .cloned()
            .collect()
    }

    /// Waits at most [`WAIT`] for a line of its log that contains `text`, which it
    /// returns.
    pub fn wait_logged(&self, text: &str) -> String {
        let found = |o: &Output| o.log.iter().any(|l| l.contains(text));
        if !self.wait_until_within(WAIT, found) {
            let log = self.output.0.lock().unwrap().log.join("\n");
            panic!("timed out waiting for {text:?} in the log:\n{log}");
        }
        self.logged(text).remove(0)
    }

    /// Waits for an event matching `f`, which it returns.
    pub fn wait_for(&self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        self.wait_until(what, |o| o.lines.iter().any(&f));
        self.events(f).pop().expect("present")
    }

    /// Waits for the `n`-th event matching `f`.
    pub fn wait_for_nth(&self, what: &str, n: usize, f: impl Fn(&Value) -> bool) {
        self.wait_until(what, |o| o.lines.iter().filter(|v| f(v)).count() >= n);
    }

    /// Waits until the process's stdout closed (it died and all it printed was read).
    pub fn wait_closed(&self) {
        self.wait_until("the process to end", |o| o.closed);
    }

    /// Waits at most `within` for the process's stdout to close; panics if it does not.
    pub fn wait_closed_within(&self, within: Duration) {
        assert!(
            self.wait_until_within(within, |o| o.closed),
            "the process did not end within {within:?}"
        );
    }
}

/// The program whose events `cmd` prints, if it runs `pcxses-ac` or `pcxses-device` with
/// `--events`.
fn printing_events(cmd: &Command) -> Option<Program> {
    let program = match Path::new(cmd.get_program()).file_name()?.to_str()? {
        "pcxses-ac" => Program::Ac,
        "pcxses-device" => Program::Device,
        _ => return None,
    };
    cmd.get_args().any(|a| a == "--events").then_some(program)
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let undocumented = std::mem::take(&mut self.output.0.lock().unwrap().undocumented);
        if !undocumented.is_empty() && !std::thread::panicking() {
            panic!(
                "events not described in docs/EVENTS.md:\n{}",
                undocumented.join("\n")
            );
        }
    }
}

/// Whether `v` is an event of kind `event`.
pub fn is(v: &Value, event: &str) -> bool {
    v["event"] == event
}

/// A test's world: a configuration in a directory of its own, the AC, and devices.
pub struct World {
    /// The directory of the configuration and every file beside it.
    pub dir: PathBuf,
    /// The transport's name on the command line: `tcp`, `udp` or `quic`.
    pub transport: &'static str,
    /// The AC, while it runs.
    pub ac: Option<Proc>,
    /// The address the AC listens on.
    pub addr: String,
    /// Where the area's standby ACs listen: devices are given them after `addr`.
    pub standbys: Vec<String>,
    /// Whether every device has a pre-shared key.
    pub keyed: bool,
    /// The AC's limit of open files, if lowered.
    pub ac_nofile: Option<u32>,
    /// The HELLO interval devices propose.
    pub hello_ms: u32,
    /// The dead interval devices propose.
    pub dead_ms: u32,
}

/// How a [`World`] is set up beyond its three devices.
#[derive(Default)]
pub struct Setup<'a> {
    /// The length of the counters' object.
    pub code_bytes: usize,
    /// The AC signs manifests with a fresh key (`code-signing.pub` beside the
    /// configuration; `stranger.pub` is another key), `counter-alpha` may move only to
    /// `gamma`, then `beta`, and `counter-beta` only to `gamma`, then `alpha`.
    pub signed: bool,
    /// The object of `counter-alpha` is this WebAssembly module (`alpha.wasm` beside the
    /// configuration), which alpha runs with `--guest`.
    pub alpha_module: Option<&'a [u8]>,
    /// Every device has a pre-shared key (`NAME.psk` beside the configuration).
    pub keyed: bool,
    /// The AC keeps a journal (`ac.journal` beside the configuration).
    pub journal: bool,
    /// The AC runs with at most this many open files (through `prlimit`).
    pub ac_nofile: Option<u32>,
    /// The dead interval devices propose; 600 ms if `None`.
    pub dead_ms: Option<u32>,
    /// The HELLO interval devices propose; 100 ms if `None`.
    pub hello_ms: Option<u32>,
    /// More computations alpha runs, each a WebAssembly module by name (`NAME.wasm`
    /// beside the configuration, for alpha's `--guest NAME=PATH`).
    pub alpha_guests: &'a [(&'a str, &'a [u8])],
    /// Sections appended to the AC's configuration (`[etcd]`, …).
    pub ac_sections: &'a str,
}

impl World {
    /// Three devices `alpha`, `beta`, `gamma`, each running `counter-<name>`, whose object
    /// is `code_bytes` long.
    pub fn new(transport: &'static str, test: &str, code_bytes: usize) -> World {
        World::with(
            transport,
            test,
            Setup {
                code_bytes,
                ..Setup::default()
            },
        )
    }

    /// As [`World::new`], set up as `setup` says.
    pub fn with(transport: &'static str, test: &str, setup: Setup<'_>) -> World {
        let Setup {
            code_bytes,
            ac_sections,
            signed,
            alpha_module,
            keyed,
            journal,
            ac_nofile,
            dead_ms,
            hello_ms,
            alpha_guests,
        } = setup;
        let dir = std::env::temp_dir().join(format!(
            "pcxses-e2e-{}-{transport}-{test}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let code: Vec<u8> = (0..code_bytes).map(|i| (i * 31 % 251) as u8).collect();
        repository::add(&dir.join("repo"), "counter.bin", &code).unwrap();
        let mut config = String::from(
            "[ac]\nlisten = \"127.0.0.1:0\"\nrepository = \"repo\"\nhello_ms = { min = 50, max = 1000 }\ndead_ms = { min = 150, max = 5000 }\n",
        );
        if let Some(module) = alpha_module {
            std::fs::write(dir.join("alpha.wasm"), module).unwrap();
            repository::add(&dir.join("repo"), "alpha.wasm", module).unwrap();
        }
        if transport == "quic" {
            // `mallory` has a certificate of the devices' CA but no place in the registry.
            let names = ["alpha", "beta", "gamma", "mallory"];
            pcxses_transport_quic::certs::write_dev_pki(&dir, &names).unwrap();
        }
        if journal {
            config += "journal = \"ac.journal\"\n";
        }
        if signed {
            keys::generate(&dir, "code-signing").unwrap();
            keys::generate(&dir, "stranger").unwrap();
            config += "code_signing_key = \"code-signing.key\"\n";
        }
        for (name, module) in alpha_guests {
            std::fs::write(dir.join(format!("{name}.wasm")), module).unwrap();
            let id = format!("{name}.wasm");
            repository::add(&dir.join("repo"), &id, module).unwrap();
            config += &format!("\n[[computation]]\nname = \"{name}\"\nobjects = [{{ id = \"{id}\", invoke = true }}]\n");
        }
        for d in ["alpha", "beta", "gamma"] {
            let mut runs = format!("\"counter-{d}\"");
            if d == "alpha" {
                for (name, _) in alpha_guests {
                    runs += &format!(", \"{name}\"");
                }
            }
            config += &format!("\n[[device]]\nname = \"{d}\"\nruns = [{runs}]\n");
            if keyed {
                keys::generate_psk(&dir, d).unwrap();
                config += &format!("psk_file = \"{d}.psk\"\n");
            }
            let object = if d == "alpha" && alpha_module.is_some() {
                "alpha.wasm"
            } else {
                "counter.bin"
            };
            config += &format!("\n[[computation]]\nname = \"counter-{d}\"\nobjects = [{{ id = \"{object}\", invoke = true }}]\n");
            match d {
                "alpha" if signed => config += "hosts = [\"gamma\", \"beta\"]\n",
                "beta" if signed => config += "hosts = [\"gamma\", \"alpha\"]\n",
                _ => {}
            }
        }
        config += ac_sections;
        std::fs::write(dir.join("ac.toml"), config).unwrap();
        let mut w = World {
            dir,
            transport,
            ac: None,
            addr: String::new(),
            standbys: Vec::new(),
            keyed,
            ac_nofile,
            hello_ms: hello_ms.unwrap_or(100),
            dead_ms: dead_ms.unwrap_or(600),
        };
        w.start_ac(None);
        w
    }

    /// Starts the AC (on `listen` instead of a port of the system's choice) and waits until
    /// it listens.
    pub fn start_ac(&mut self, listen: Option<&str>) {
        // `prlimit` lowers its own limit, then becomes the AC: same process.
        let mut cmd = match self.ac_nofile {
            Some(n) => {
                let mut cmd = Command::new("prlimit");
                cmd.arg(format!("--nofile={n}:{n}")).arg(ac_executable());
                cmd
            }
            None => Command::new(ac_executable()),
        };
        // A configuration named relative to the working directory, as an operator would.
        cmd.current_dir(&self.dir).args([
            "--config",
            "ac.toml",
            "--transport",
            self.transport,
            "--events",
            "jsonl",
            "--stats-ms",
            "200",
        ]);
        if let Some(l) = listen {
            cmd.args(["--listen", l]);
        }
        if self.transport == "quic" {
            cmd.args([
                "--cert",
                path(&self.dir.join("ac.pem")),
                "--key",
                path(&self.dir.join("ac.key")),
            ]);
            cmd.args(["--device-ca", path(&self.dir.join("ca.pem"))]);
        }
        let ac = Proc::spawn(&mut cmd);
        let listening = ac.wait_for("the AC to listen", |v| is(v, "listening"));
        self.addr = listening["addr"].as_str().unwrap().to_string();
        self.ac = Some(ac);
    }

    /// The AC; panics if it does not run.
    pub fn ac(&self) -> &Proc {
        self.ac.as_ref().expect("AC running")
    }

    /// Starts alpha, beta and gamma, and waits until each has joined.
    pub fn joined_devices(&self) -> Vec<(&'static str, Proc)> {
        let devices: Vec<(&str, Proc)> = ["alpha", "beta", "gamma"]
            .into_iter()
            .map(|d| (d, self.device(d)))
            .collect();
        for (_, d) in &devices {
            d.wait_for("a join", |v| is(v, "joined"));
        }
        devices
    }

    /// Starts device `name`.
    pub fn device(&self, name: &str) -> Proc {
        self.device_with(name, &[])
    }

    /// Starts device `name` with `extra` arguments.
    pub fn device_with(&self, name: &str, extra: &[&str]) -> Proc {
        self.device_at(&self.addr, name, extra)
    }

    /// A device that reaches the AC at `addr` (a link in front of it).
    pub fn device_at(&self, addr: &str, name: &str, extra: &[&str]) -> Proc {
        let mut cmd = Command::new(device_executable());
        if self.keyed {
            cmd.args(["--psk", path(&self.dir.join(format!("{name}.psk")))]);
        }
        if self.transport == "quic" {
            let (cert, key) = (
                self.dir.join(format!("{name}.pem")),
                self.dir.join(format!("{name}.key")),
            );
            cmd.args([
                "--ac-ca",
                path(&self.dir.join("ca.pem")),
                "--cert",
                path(&cert),
                "--key",
                path(&key),
            ]);
        }
        cmd.args(extra).args(["--ac", addr]);
        for standby in &self.standbys {
            cmd.args(["--ac", standby]);
        }
        Proc::spawn(cmd.args([
            "--name",
            name,
            "--transport",
            self.transport,
            "--events",
            "jsonl",
            "--hello-ms",
            &self.hello_ms.to_string(),
            "--dead-ms",
            &self.dead_ms.to_string(),
            "--tick-ms",
            "50",
        ]))
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.ac = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A path as a command-line argument.
pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The count of the last state of `computation` the device was told the AC stored.
pub fn last_acked(device: &Proc, computation: &str) -> u64 {
    device
        .events(|v| is(v, "state_stored") && v["computation"] == computation)
        .last()
        .and_then(|v| v["count"].as_u64())
        .unwrap_or(0)
}

/// What each device's counter was last told the AC holds, by what the test read before
/// `before`: `counter-NAME` and its count.
pub fn acked_counters(devices: &[(&str, Proc)], before: Instant) -> Vec<(String, u64)> {
    devices
        .iter()
        .map(|(d, p)| {
            let computation = format!("counter-{d}");
            let acked = p.stamped(|v| is(v, "state_stored") && v["computation"] == *computation);
            let last = acked.iter().take_while(|(at, _)| *at < before).last();
            let count = last.and_then(|(_, v)| v["count"].as_u64()).unwrap_or(0);
            (computation, count)
        })
        .collect()
}

/// Panics unless the AC's `restored` line holds every counter of `acked` at its count at
/// least; `context` names the moment.
pub fn assert_restored_at_least(restored: &Value, acked: &[(String, u64)], context: &str) {
    for (c, count) in acked {
        let held = count_of(restored["states"][c].as_str().unwrap_or(""));
        assert!(
            held >= *count,
            "{context}: {c} restored at {held}, acknowledged {count}"
        );
    }
}

/// The count in a counter's state, hex-encoded (zero for no state).
pub fn count_of(hex: &str) -> u64 {
    unhex(hex)
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// A hex string's bytes.
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// PacMan's tick and score in its encoded state.
pub fn tick_and_score(state: &[u8]) -> (u32, u32) {
    let word = |i: usize| u32::from_le_bytes(state[i..i + 4].try_into().unwrap());
    (word(1), word(9))
}

/// The transport of a [`Link`] in front of `w`'s AC: TCP for TCP, else UDP.
pub fn link_transport(w: &World) -> Transport {
    if w.transport == "tcp" {
        Transport::Tcp
    } else {
        Transport::Udp
    }
}

/// A link in front of the AC whose tap hands every bottle bound for the device to `f`,
/// which returns what to forward in its place (`None`: the bottle itself).
pub fn attacker(
    w: &World,
    mut f: impl FnMut(&Bottle<'_>) -> Option<Vec<u8>> + Send + 'static,
) -> Link {
    let tap: Tap = Box::new(move |dir, bytes| {
        if dir == Direction::ToDevice {
            if let Some(forged) = Bottle::decode(&bytes, &Limits::DEFAULT)
                .ok()
                .and_then(|b| f(&b))
            {
                return Some(forged);
            }
        }
        Some(bytes)
    });
    let transport = if w.transport == "udp" {
        Transport::Udp
    } else {
        Transport::Tcp
    };
    Link::start(
        transport,
        w.addr.parse().unwrap(),
        LinkShape::default(),
        Some(tap),
    )
    .unwrap()
}

/// A bottle's bytes.
pub fn encode(b: &Bottle<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    b.encode_to_vec(&mut out, pcxses_core::MAX_BOTTLE_LEN)
        .unwrap();
    out
}

/// Builds a guest crate for wasm32 and returns the module.
pub fn build_guest(package: &str) -> Vec<u8> {
    let paths = artifacts::guests(&[package]).expect("the guest builds");
    std::fs::read(&paths[0]).expect("the module")
}
