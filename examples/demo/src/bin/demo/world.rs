//! The demo's world: a directory with a code-signing key, a repository holding the two
//! guests, the AC's configuration, and the processes (`pcxses-ac` and `pcxses-device`, or
//! for the runner the device firmware in QEMU and `pcxses-bridge`) whose JSON event lines
//! arrive on one channel.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::{Duration, Instant};

use pcxses_ac::repository;
use pcxses_demo::artifacts;
use pcxses_demo::mcu::{self, Provision, CORTEX_M4};
use pcxses_program::keys;
use pcxses_transport_quic::certs;
use serde_json::Value;

/// Who printed an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Who {
    Ac,
    PacMan,
    Runner,
}

impl Who {
    /// The device's name in the registry.
    pub fn name(self) -> &'static str {
        match self {
            Who::Ac => "ac",
            Who::PacMan => "pacman",
            Who::Runner => "runner",
        }
    }
}

/// The guests, built once per demo.
pub struct Guests {
    pub pacman: Vec<u8>,
    pub chat: Vec<u8>,
}

impl Guests {
    pub fn build() -> Result<Guests, String> {
        let paths = artifacts::guests(&["pcxses-guest-pacman", "pcxses-guest-chat"])?;
        let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        Ok(Guests {
            pacman: read(&paths[0])?,
            chat: read(&paths[1])?,
        })
    }
}

/// The programs' executables, built once per demo.
#[derive(Clone)]
pub struct Programs {
    pub ac: PathBuf,
    pub device: PathBuf,
    pub bridge: PathBuf,
    /// The device firmware for a Cortex-M4, with signature checks and WebAssembly, if the
    /// runner is a board.
    pub firmware: Option<PathBuf>,
}

impl Programs {
    pub fn build(board: bool) -> Result<Programs, String> {
        let mut paths =
            artifacts::programs(&["pcxses-ac", "pcxses-device", "pcxses-bridge"])?.into_iter();
        let firmware = match board {
            true => Some(artifacts::firmware(
                CORTEX_M4.target,
                &["semihosting", "signing", "wasm"],
            )?),
            false => None,
        };
        match (paths.next(), paths.next(), paths.next()) {
            (Some(ac), Some(device), Some(bridge)) => Ok(Programs {
                ac,
                device,
                bridge,
                firmware,
            }),
            _ => Err("the programs were not built".into()),
        }
    }
}

/// A process of the demo; killed when dropped.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Proc {
    /// SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdin = None;
    }

    /// Writes one line to its standard input; a process that died is skipped.
    pub fn say(&mut self, line: &str) {
        if let Some(stdin) = &mut self.stdin {
            if writeln!(stdin, "{line}")
                .and_then(|()| stdin.flush())
                .is_err()
            {
                self.stdin = None;
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The settings a world is built with.
pub struct Settings {
    pub transport: &'static str,
    pub hello_ms: u32,
    pub dead_ms: u32,
    pub tick_ms: u64,
    /// The runner is the firmware on an emulated board; its serial line paced to this
    /// baud rate, if set.
    pub board: Option<Option<u32>>,
}

/// The HELLO and dead intervals of the board, whose serial line is slower than a LAN.
pub const BOARD_HELLO_MS: u32 = 250;
pub const BOARD_DEAD_MS: u32 = 3_000;

/// A directory of its own, the processes, and their events.
pub struct World {
    dir: PathBuf,
    pub ac: Option<Proc>,
    pub ac_addr: SocketAddr,
    pub pacman: Option<Proc>,
    pub runner: Option<Proc>,
    /// The runner's bridge, when it is a board.
    bridge: Option<Proc>,
    events: Receiver<(Who, Value)>,
    sink: Sender<(Who, Value)>,
    programs: Programs,
    settings: Settings,
}

/// How long any step of the demo may take.
const WAIT: Duration = Duration::from_secs(20);

/// The AC's section of both configurations: manifests signed with the key beside it.
const AC: &str = r#"[ac]
listen = "127.0.0.1:0"
repository = "repo"
code_signing_key = "code-signing.key"
hello_ms = { min = 20, max = 10000 }
dead_ms = { min = 60, max = 60000 }
"#;

/// The registry: the two devices, each running one computation that may move only to the
/// other.
const REGISTRY: &str = r#"
[[device]]
name = "pacman"
runs = ["pacman"]

[[device]]
name = "runner"
runs = ["chat"]

[[computation]]
name = "pacman"
objects = [{ id = "pacman.wasm", invoke = true }]
hosts = ["runner"]

[[computation]]
name = "chat"
objects = [{ id = "chat.wasm", invoke = true }]
hosts = ["pacman"]"#;

/// The registry when the runner is a board: it runs nothing of its own, and PacMan may
/// move to it and back.
const BOARD_REGISTRY: &str = r#"
[[device]]
name = "pacman"
runs = ["pacman"]

[[device]]
name = "runner"
runs = []

[[computation]]
name = "pacman"
objects = [{ id = "pacman.wasm", invoke = true }]
hosts = ["runner", "pacman"]"#;

impl World {
    /// Writes the configuration and starts the AC.
    pub fn new(guests: &Guests, programs: &Programs, settings: Settings) -> Result<World, String> {
        let dir = std::env::temp_dir().join(format!("pcxses-demo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        keys::generate(&dir, "code-signing")?;
        certs::write_dev_pki(&dir, &["pacman", "runner"]).map_err(|e| e.to_string())?;
        let repo = dir.join("repo");
        for (id, wasm) in [("pacman.wasm", &guests.pacman), ("chat.wasm", &guests.chat)] {
            repository::add(&repo, id, wasm).map_err(|e| e.to_string())?;
            std::fs::write(dir.join(id), wasm).map_err(|e| e.to_string())?;
        }
        let registry = match settings.board {
            Some(_) => BOARD_REGISTRY,
            None => REGISTRY,
        };
        std::fs::write(dir.join("ac.toml"), format!("{AC}{registry}"))
            .map_err(|e| e.to_string())?;
        let (sink, events) = channel();
        let mut world = World {
            ac_addr: ([127, 0, 0, 1], 0).into(),
            dir,
            ac: None,
            pacman: None,
            runner: None,
            bridge: None,
            events,
            sink,
            programs: programs.clone(),
            settings,
        };
        let (config, cert, key, ca) = (
            world.path("ac.toml"),
            world.path("ac.pem"),
            world.path("ac.key"),
            world.path("ca.pem"),
        );
        let mut args = vec![
            "--config",
            &config,
            "--transport",
            world.settings.transport,
            "--events",
            "jsonl",
        ];
        if world.settings.transport == "quic" {
            args.extend(["--cert", &cert, "--key", &key, "--device-ca", &ca]);
        }
        let exe = world.programs.ac.clone();
        let ac = world.spawn(Who::Ac, &mut Command::new(exe), &args)?;
        world.ac = Some(ac);
        let listening = world.wait_for("the AC to listen", |who, v| {
            who == Who::Ac && v["event"] == "listening"
        })?;
        world.ac_addr = listening["addr"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .ok_or("the AC printed no address")?;
        Ok(world)
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// Starts both devices, connecting to `ac` (the AC itself, or a link in front of it).
    pub fn start_devices(&mut self, ac: SocketAddr) -> Result<(), String> {
        self.start_device(Who::PacMan, ac)?;
        match self.settings.board {
            Some(baud) => self.start_board(ac, baud),
            None => self.start_device(Who::Runner, ac),
        }
    }

    /// Starts the device agent `who`, connecting to `ac`.
    pub fn start_device(&mut self, who: Who, ac: SocketAddr) -> Result<(), String> {
        let guest = match who {
            Who::Runner => "chat",
            _ => "pacman",
        };
        let s = &self.settings;
        let mut args = vec![
            "--ac".to_string(),
            ac.to_string(),
            "--name".into(),
            who.name().into(),
            "--transport".into(),
            s.transport.into(),
            "--events".into(),
            "jsonl".into(),
            "--hello-ms".into(),
            s.hello_ms.to_string(),
            "--dead-ms".into(),
            s.dead_ms.to_string(),
            "--tick-ms".into(),
            s.tick_ms.to_string(),
            "--code-key".into(),
            self.path("code-signing.pub"),
            "--guest".into(),
            format!("{guest}={}", self.path(&format!("{guest}.wasm"))),
            "--frames".into(),
            "1".into(),
            "--input".into(),
        ];
        if s.transport == "quic" {
            let name = who.name();
            args.extend([
                "--ac-ca".into(),
                self.path("ca.pem"),
                "--cert".into(),
                self.path(&format!("{name}.pem")),
                "--key".into(),
                self.path(&format!("{name}.key")),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let exe = self.programs.device.clone();
        let proc = self.spawn(who, &mut Command::new(exe), &args)?;
        match who {
            Who::PacMan => self.pacman = Some(proc),
            _ => self.runner = Some(proc),
        }
        Ok(())
    }

    /// Boots the runner's board in QEMU, provisioned with the code-signing key, and
    /// bridges its serial line to `ac`, paced to `baud` if set.
    fn start_board(&mut self, ac: SocketAddr, baud: Option<u32>) -> Result<(), String> {
        let image = self.programs.firmware.clone().ok_or("no firmware built")?;
        let key = std::fs::read_to_string(self.dir.join("code-signing.pub"))
            .map_err(|e| e.to_string())?;
        let provision = Provision {
            name: Who::Runner.name().into(),
            psk: None,
            code_key: unhex(key.trim()).and_then(|k| k.try_into().ok()),
            seed: pcxses_core::os_seed().ok_or("no randomness from the system")?,
            hello_ms: BOARD_HELLO_MS,
            dead_ms: BOARD_DEAD_MS,
            tick_ms: self.settings.tick_ms as u32,
            frames: 1,
        };
        let record = self.dir.join("runner.provision");
        std::fs::write(&record, provision.to_bytes()).map_err(|e| e.to_string())?;
        let (proc, pty) = self.spawn_board(&mut mcu::qemu_command(CORTEX_M4, &image, &record))?;
        self.runner = Some(proc);
        let mut args = vec!["--serial".to_string(), pty, "--ac".into(), ac.to_string()];
        if let Some(baud) = baud {
            args.extend(["--baud".into(), baud.to_string(), "--pace".into()]);
        }
        let bridge = Command::new(&self.programs.bridge)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the bridge: {e}"))?;
        self.bridge = Some(Proc {
            child: bridge,
            stdin: None,
        });
        Ok(())
    }

    pub fn device(&mut self, who: Who) -> Option<&mut Proc> {
        match who {
            Who::PacMan => self.pacman.as_mut(),
            Who::Runner => self.runner.as_mut(),
            Who::Ac => self.ac.as_mut(),
        }
    }

    fn spawn(&self, who: Who, cmd: &mut Command, args: &[&str]) -> Result<Proc, String> {
        let mut child = cmd
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", who.name()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        self.forward(who, BufReader::new(stdout));
        let stdin = child.stdin.take();
        Ok(Proc { child, stdin })
    }

    /// Starts QEMU with `cmd`: the board's process, and the pseudo-terminal of its UART,
    /// which QEMU names on its first line (within [`WAIT`]).
    fn spawn_board(&self, cmd: &mut Command) -> Result<(Proc, String), String> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", mcu::QEMU))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let proc = Proc { child, stdin: None };
        let (named, pty) = channel();
        let sink = self.sink.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
            for line in lines.by_ref() {
                if let Some(pty) = mcu::pty_in(&line) {
                    let _ = named.send(pty.display().to_string());
                    break;
                }
            }
            for line in lines {
                if let Ok(v) = serde_json::from_str(&line) {
                    if sink.send((Who::Runner, v)).is_err() {
                        break;
                    }
                }
            }
        });
        let pty = pty
            .recv_timeout(WAIT)
            .map_err(|_| format!("{} named no pseudo-terminal", mcu::QEMU))?;
        Ok((proc, pty))
    }

    /// Hands the JSON lines of `stdout` to the world's channel, as `who`'s events.
    fn forward(&self, who: Who, stdout: impl BufRead + Send + 'static) {
        let sink = self.sink.clone();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    if sink.send((who, v)).is_err() {
                        break;
                    }
                }
            }
        });
    }

    /// The next event, if one comes before `until`.
    pub fn next_event(&self, until: Instant) -> Option<(Who, Value)> {
        self.events
            .recv_timeout(until.saturating_duration_since(Instant::now()))
            .ok()
    }

    /// Waits for an event matching `f`, dropping the others.
    pub fn wait_for(&self, what: &str, f: impl Fn(Who, &Value) -> bool) -> Result<Value, String> {
        let deadline = Instant::now() + WAIT;
        loop {
            match self.next_event(deadline) {
                Some((who, v)) if f(who, &v) => return Ok(v),
                Some(_) => {}
                None => return Err(format!("timed out waiting for {what}")),
            }
        }
    }

    /// The deadline of a step that starts now.
    pub fn deadline() -> Instant {
        Instant::now() + WAIT
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.pacman = None;
        self.runner = None;
        self.bridge = None;
        self.ac = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A hex string's bytes.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
