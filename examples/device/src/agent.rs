//! The device agent: it joins the AC, runs the computations it is given, reports their
//! state every tick, and takes over computations the AC moves to it, resuming them from
//! their last known good state. A computation is a shipped WebAssembly module (SUI ABI;
//! `--guest NAME=PATH` for the ones it runs natively, the invoked module of the MORPH for
//! the ones it receives) or else a built-in counter whose state is its count. A guest that
//! runs out of fuel or traps is stopped and reported (`guest_failed`); the device carries
//! on. With `--input`, each line of standard input goes to the guests that take input.
//! SIGINT or SIGTERM makes it leave with GOOD_BYE.
//!
//! The device's protocol machine and its transport run on a thread of their own, apart from
//! the guests: a guest that computes for as long as its fuel allows delays other guests,
//! never a HELLO. Between two guests' steps the agent acts on the protocol's events, so a
//! `stop` (fencing) waits for at most one guest call.
//!
//! Check the lease before acting, not after. The protocol thread publishes the device's
//! fence lease ([`RunningDevice::lease`]) after every input; immediately before every step
//! of a computation, and before handing a guest an input line, the agent reads it with the
//! time of that step and skips the step when the lease does not permit it. A process that
//! stalled (frozen by SIGSTOP, swapped out, starved) may run its guests before the protocol
//! thread has judged the lease and reported `stop` with reason `fenced`: without the check a
//! stale copy would take steps beside the copy the AC moved elsewhere. The `stop` follows.
//! Ticks missed in such a gap are not caught up: the next tick is due one period after the
//! loop woke.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use pcxses_core::device::DeviceCommand;
use pcxses_core::wire::StateMode;
use pcxses_core::{Device, DeviceConfig, DeviceEvent, Epoch};
use smol::future::FutureExt;
use smol::{Executor, Timer};

use crate::computations::{native_guests, Computations};
use pcxses_program::events::{at_ms, device_event, EventFormat};
use pcxses_program::shutdown::Shutdown;
use pcxses_program::transport::{Acs, DeviceTlsArgs, RunningDevice, Transport};

/// The device agent's command line.
#[derive(clap::Parser, Debug)]
#[command(version, about = "A PCXSES device agent")]
pub struct AgentArgs {
    /// The AC's address; given more than once, the addresses of the area's leader and
    /// standby ACs, tried in that order: the device moves to the next when the one it uses
    /// stops answering, and carries its session there.
    #[arg(long, required = true)]
    pub ac: Vec<SocketAddr>,
    /// This device's name in the AC's registry.
    #[arg(long)]
    pub name: String,
    /// The transport.
    #[arg(long, value_enum, default_value = "udp")]
    pub transport: Transport,
    /// Print protocol events on stdout as JSON lines.
    #[arg(long, value_enum)]
    pub events: Option<EventFormat>,
    /// Proposed HELLO interval.
    #[arg(long, default_value_t = 200)]
    pub hello_ms: u32,
    /// Proposed dead interval.
    #[arg(long, default_value_t = 600)]
    pub dead_ms: u32,
    /// How often the counters count.
    #[arg(long, default_value_t = 100)]
    pub tick_ms: u64,
    /// Propose SPLIT mode (state on STATE bottles) instead of JOINED.
    #[arg(long)]
    pub split: bool,
    /// The code-signing public key file (`pcxses-ac keygen`): refuse MORPHs not signed
    /// with it.
    #[arg(long)]
    pub code_key: Option<std::path::PathBuf>,
    /// The key this device shares with the AC (`pcxses-ac psk`): join by
    /// challenge–response and seal every bottle (TCP and UDP).
    #[arg(long)]
    pub psk: Option<std::path::PathBuf>,
    /// Run computation NAME natively from the WebAssembly module at PATH (SUI ABI).
    #[arg(long, value_name = "NAME=PATH")]
    pub guest: Vec<String>,
    /// Print a `frame` event of every guest that steps, every this many ticks; its `at_ms`
    /// is the time of the step.
    #[arg(long)]
    pub frames: Option<u64>,
    /// Hand each line of standard input to the guests that take input.
    #[arg(long)]
    pub input: bool,
    /// TLS, for `--transport quic`.
    #[command(flatten)]
    pub tls: DeviceTlsArgs,
}

/// Runs the agent until SIGINT or SIGTERM (then it leaves) or its transport fails.
pub fn run(cli: AgentArgs) -> Result<(), String> {
    let epoch = Epoch::new();
    // Every incarnation needs its own join nonce: draw the seed from the operating system.
    let seed = getrandom::u64().map_err(|e| format!("no randomness from the system: {e}"))?;
    let mut config = DeviceConfig::new(&cli.name, seed);
    config.hello = Duration::from_millis(cli.hello_ms.into());
    config.dead = Duration::from_millis(cli.dead_ms.into());
    config.mode = if cli.split {
        StateMode::Separate
    } else {
        StateMode::InHello
    };
    config.code_key = cli
        .code_key
        .as_deref()
        .map(pcxses_program::keys::verifier)
        .transpose()?;
    config.psk = cli
        .psk
        .as_deref()
        .map(pcxses_program::keys::psk)
        .transpose()?;
    let tls = match cli.transport {
        Transport::Quic => Some(cli.tls.load()?),
        _ => None,
    };
    let acs = Acs::new(cli.ac.iter().copied()).ok_or("--ac is required")?;
    let device = Device::new(config, epoch.now());
    let mut shutdown = Shutdown::catch().map_err(|e| e.to_string())?;
    let protocol = ProtocolThread::start().map_err(|e| e.to_string())?;
    let ex = Arc::new(Executor::new());
    let result = smol::block_on(ex.run(async {
        let agent = cli
            .transport
            .connect(&protocol.ex, device, epoch, acs, tls.as_ref())
            .map_err(|e| e.to_string())?;
        let mut computations = Computations::new(native_guests(&cli.guest)?);
        let mut out = std::io::stdout().lock();
        let mut print = |line: serde_json::Value| {
            if cli.events.is_some() {
                let _ = writeln!(out, "{line}").and_then(|()| out.flush());
            }
        };
        let input = cli.input.then(read_stdin);
        let mut leaving = false;
        let mut ticks = 0u64;
        let mut next_tick = std::time::Instant::now();
        'run: loop {
            enum Wake {
                Event(Option<DeviceEvent>),
                Tick,
                Input(String),
                Stop,
            }
            let next = async { Wake::Event(agent.events.recv().await.ok()) }
                .or(async {
                    match input.as_ref().map(|lines| lines.recv()) {
                        Some(line) => match line.await {
                            Ok(line) => Wake::Input(line),
                            Err(_) => smol::future::pending().await,
                        },
                        None => smol::future::pending().await,
                    }
                })
                .or(async {
                    Timer::at(next_tick).await;
                    Wake::Tick
                });
            let wake = shutdown.race(next, Wake::Stop).await;
            match wake {
                Wake::Event(None) => return Err("the agent stopped".into()),
                Wake::Event(Some(event)) => {
                    if on_event(event, &mut computations, &agent, &mut print, epoch, leaving).await {
                        break;
                    }
                }
                Wake::Tick => {
                    let now = std::time::Instant::now();
                    next_tick += Duration::from_millis(cli.tick_ms);
                    if next_tick <= now {
                        // A gap (a freeze, a stall): the missed ticks are not caught up.
                        next_tick = now + Duration::from_millis(cli.tick_ms);
                    }
                    ticks += 1;
                    let frame_due = cli.frames.is_some_and(|every| ticks.is_multiple_of(every));
                    for computation in computations.names() {
                        // Fencing first: what the protocol said while the last guest ran.
                        while let Ok(event) = agent.events.try_recv() {
                            if on_event(event, &mut computations, &agent, &mut print, epoch, leaving).await {
                                break 'run;
                            }
                        }
                        // The lease at the time of this step: after a gap the protocol
                        // thread may not have fenced yet.
                        let at = epoch.now();
                        if !agent.lease.permits(at) {
                            continue;
                        }
                        match computations.step(&computation) {
                            Some(Ok(state)) => {
                                if frame_due {
                                    if let Some(text) = computations.frame(&computation) {
                                        // Stamped with the time the step was permitted.
                                        print(serde_json::json!({"event": "frame", "computation": computation, "text": text, "at_ms": at_ms(at)}));
                                    }
                                }
                                let _ = agent.commands.send(DeviceCommand::SetState { computation, state }).await;
                            }
                            // A runaway or trapping guest is stopped and reported; the
                            // device carries on.
                            Some(Err(error)) => print(serde_json::json!({"event": "guest_failed", "computation": computation, "error": error, "at_ms": at_ms(at)})),
                            None => {}
                        }
                    }
                }
                Wake::Input(line) => {
                    if !agent.lease.permits(epoch.now()) {
                        for computation in computations.taking_input() {
                            print(serde_json::json!({"event": "input_refused", "computation": computation, "error": "no fence lease", "at_ms": at_ms(epoch.now())}));
                        }
                        continue;
                    }
                    for f in computations.input(line.as_bytes()) {
                        let event = if f.stopped { "guest_failed" } else { "input_refused" };
                        print(serde_json::json!({"event": event, "computation": f.computation, "error": f.error.to_string(), "at_ms": at_ms(epoch.now())}));
                    }
                }
                Wake::Stop => {
                    if leaving {
                        break;
                    }
                    tracing::info!("leaving");
                    leaving = true;
                    computations.stop_all();
                    let _ = agent.commands.send(DeviceCommand::Leave).await;
                    next_tick = std::time::Instant::now() + Duration::from_secs(3600);
                }
            }
        }
        agent.commands.close();
        let stats = agent.task.await.map_err(|e| e.to_string())?;
        tracing::info!(?stats, "stopped");
        Ok(())
    }));
    protocol.stop();
    result
}

/// Acts on one protocol event; returns whether the agent is done (it left).
async fn on_event(
    event: DeviceEvent,
    computations: &mut Computations,
    agent: &RunningDevice,
    print: &mut impl FnMut(serde_json::Value),
    epoch: Epoch,
    leaving: bool,
) -> bool {
    let state = match &event {
        DeviceEvent::StateStored {
            computation,
            version,
        } => computations.state_of(computation, *version),
        DeviceEvent::Install(i) => Some(i.lkgs()),
        _ => None,
    };
    print(device_event(&event, state, epoch.now()));
    match event {
        DeviceEvent::Rejected { reason } => {
            tracing::warn!(
                ?reason,
                "the AC refused this device's GOOD_MORNING: trying again later"
            );
        }
        DeviceEvent::Joined { run, .. } => {
            for c in run {
                if let Err(error) = computations.start(&c) {
                    print(
                        serde_json::json!({"event": "guest_failed", "computation": c, "error": error, "at_ms": at_ms(epoch.now())}),
                    );
                }
            }
        }
        DeviceEvent::Install(i) => {
            let started = match computations.install(&i) {
                Ok(()) => true,
                Err(error) => {
                    print(
                        serde_json::json!({"event": "guest_failed", "computation": i.computation, "error": error, "at_ms": at_ms(epoch.now())}),
                    );
                    false
                }
            };
            let answer = DeviceCommand::AnswerInstall { id: i.id, started };
            let _ = agent.commands.send(answer).await;
        }
        DeviceEvent::Stop { computation, .. } => computations.stop(&computation),
        DeviceEvent::Left => return leaving,
        _ => {}
    }
    false
}

/// The thread the protocol machine and its transport run on, apart from the guests.
struct ProtocolThread {
    /// Spawn the transport's tasks here.
    ex: Arc<Executor<'static>>,
    /// Closed to end the thread.
    stop: smol::channel::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl ProtocolThread {
    fn start() -> std::io::Result<ProtocolThread> {
        let ex = Arc::new(Executor::new());
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let runner = ex.clone();
        let thread = std::thread::Builder::new()
            .name("protocol".into())
            .spawn(move || {
                let _ = smol::block_on(runner.run(stopped.recv()));
            })?;
        Ok(ProtocolThread { ex, stop, thread })
    }

    /// Ends the thread once the tasks spawned on it are done with.
    fn stop(self) {
        self.stop.close();
        let _ = self.thread.join();
    }
}

/// The lines of standard input, read on a thread of their own; the channel closes at the
/// end of input.
fn read_stdin() -> smol::channel::Receiver<String> {
    let (tx, rx) = smol::channel::bounded(64);
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send_blocking(line).is_err() {
                break;
            }
        }
    });
    rx
}
