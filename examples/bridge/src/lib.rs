//! A bridge between one serial line and an AC: the bottles of the device on the line,
//! framed for it (`pcxses_core::serial`), go to the AC as UDP datagrams, one bottle each,
//! and the AC's answers go back on the line, framed.
//!
//! `pcxses-bridge --serial PATH --ac ADDR [--baud N] [--pace]` opens the serial device at `PATH` (a
//! USB-UART such as `/dev/ttyUSB0`, or the pseudo-terminal an emulator exposes), and
//! carries the device's bottles until SIGINT or SIGTERM. Noise on the line costs the frames
//! it touched: the decoder resynchronises at the next frame and counts what it dropped.
//! `--baud` sets the port's rate (115,200 by default); `--pace` makes the bridge pace both
//! directions to it (ten bits a byte), for lines that do not pace themselves (an
//! emulator's UART). Towards the device, the AC's control bottles go before object code
//! ([`queue`]). Every second in which something changed it prints the line's counters as
//! a JSON line on stdout:
//!
//! ```text
//! {"event":"serial","frames":12,"dropped":1,"dropped_bytes":37,"to_serial":12,"queue_dropped":0,"queue_duplicates":0}
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod pace;
pub mod queue;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use pcxses_core::serial::{push_serial_frame, SerialDecoder, SerialStats};
use pcxses_core::MAX_BOTTLE_LEN;
use serialport::TTYPort;
use smol::channel::{bounded, Sender};
use smol::future::FutureExt;
use smol::Timer;

use crate::pace::Pace;
use crate::queue::{LineQueue, Pushed};

/// How long a read of the serial line waits before it looks again.
const READ_TIMEOUT: Duration = Duration::from_millis(200);

/// How often the counters are printed, when they changed.
const STATS_PERIOD: Duration = Duration::from_secs(1);

/// The rate a port is opened at without `--baud` (a pseudo-terminal ignores it).
const DEFAULT_BAUD: u32 = 115_200;

/// How long a direction waits after its socket or line reported nothing, or an error it
/// carries on after.
const BACKOFF: Duration = Duration::from_millis(10);

/// The bridge's command line.
#[derive(Debug, Parser)]
#[command(
    name = "pcxses-bridge",
    about = "Carries a serial-line device's bottles to an AC"
)]
pub struct BridgeArgs {
    /// The serial device: a USB-UART, or an emulator's pseudo-terminal.
    #[arg(long)]
    pub serial: PathBuf,
    /// The AC's UDP address.
    #[arg(long)]
    pub ac: SocketAddr,
    /// The port's rate, bits per second.
    #[arg(long, default_value_t = DEFAULT_BAUD, value_parser = clap::value_parser!(u32).range(1..))]
    pub baud: u32,
    /// Paces both directions to the rate, for a line that does not pace itself.
    #[arg(long)]
    pub pace: bool,
}

/// Why the bridge stopped.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The serial device could not be opened or set up.
    #[error("serial device: {0}")]
    Open(#[from] serialport::Error),
    /// The serial line or the socket failed.
    #[error("{what}: {source}")]
    Io {
        /// Which of them.
        what: &'static str,
        /// The failure.
        source: io::Error,
    },
}

/// What the bridge has carried and dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// The line's decoder: frames received whole, frames and bytes dropped.
    pub line: SerialStats,
    /// Frames written to the line.
    pub to_serial: u64,
    /// The AC's bottles dropped because their class of the line's queue was full.
    pub queue_dropped: u64,
    /// The AC's bottles dropped because the same bytes were waiting for the line.
    pub queue_duplicates: u64,
}

/// Runs the bridge until SIGINT or SIGTERM, or until the line or the socket fails.
pub fn run(args: BridgeArgs) -> Result<(), BridgeError> {
    let port = serialport::new(args.serial.to_string_lossy(), args.baud)
        .timeout(READ_TIMEOUT)
        .open_native()?;
    let io = |what| move |source| BridgeError::Io { what, source };
    let local: SocketAddr = match args.ac {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).map_err(io("socket"))?;
    socket.connect(args.ac).map_err(io("socket"))?;
    let mut shutdown = pcxses_program::shutdown::Shutdown::catch().map_err(io("signals"))?;
    let counters = Arc::new(Mutex::new(Counters::default()));
    let (failed, failure) = bounded(2);
    let line = Line {
        baud: args.pace.then_some(args.baud),
        counters: counters.clone(),
        failed,
    };
    {
        let (line, port) = (line.clone(), port.try_clone_native()?);
        let socket = socket.try_clone().map_err(io("socket"))?;
        std::thread::spawn(move || line.forward_to_ac(port, socket));
    }
    let queue = Arc::new(LineQueue::default());
    {
        let (line, queue) = (line.clone(), queue.clone());
        std::thread::spawn(move || line.receive_from_ac(socket, &queue));
    }
    std::thread::spawn(move || line.forward_to_serial(port, &queue));
    tracing::info!(serial = %args.serial.display(), ac = %args.ac, baud = args.baud, pace = args.pace, "bridging");
    smol::block_on(async {
        let mut printed = Counters::default();
        loop {
            let wake = async {
                Timer::after(STATS_PERIOD).await;
                Wake::Stats
            }
            .or(async {
                match failure.recv().await {
                    Ok(e) => Wake::Failed(e),
                    Err(_) => std::future::pending().await,
                }
            });
            let wake = shutdown.race(wake, Wake::Stop).await;
            let now = counters.lock().map(|c| *c).unwrap_or_default();
            if now != printed {
                print_counters(&now);
                printed = now;
            }
            match wake {
                Wake::Stats => {}
                Wake::Stop => return Ok(()),
                Wake::Failed(e) => return Err(e),
            }
        }
    })
}

/// What woke the bridge's main thread.
enum Wake {
    Stats,
    Stop,
    Failed(BridgeError),
}

fn print_counters(c: &Counters) {
    let line = serde_json::json!({
        "event": "serial",
        "frames": c.line.frames,
        "dropped": c.line.dropped,
        "dropped_bytes": c.line.dropped_bytes,
        "to_serial": c.to_serial,
        "queue_dropped": c.queue_dropped,
        "queue_duplicates": c.queue_duplicates,
    });
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// What both directions share.
#[derive(Clone)]
struct Line {
    /// The rate each direction is paced to, with `--pace`.
    baud: Option<u32>,
    counters: Arc<Mutex<Counters>>,
    failed: Sender<BridgeError>,
}

impl Line {
    fn fail(&self, what: &'static str, source: io::Error) {
        let _ = self.failed.try_send(BridgeError::Io { what, source });
    }

    /// The device's frames, decoded, to the AC.
    fn forward_to_ac(self, mut port: TTYPort, socket: UdpSocket) {
        let mut decoder = SerialDecoder::new(MAX_BOTTLE_LEN);
        let mut pace = self.baud.map(Pace::new);
        let mut buf = vec![0u8; 4096];
        loop {
            let n = match port.read(&mut buf) {
                Ok(0) => {
                    std::thread::sleep(BACKOFF);
                    continue;
                }
                Ok(n) => n,
                Err(e) if retry(&e) => continue,
                Err(e) => return self.fail("serial read", e),
            };
            wait(&mut pace, n);
            let mut input = &buf[..n];
            while let Some(bottle) = decoder.decode(&mut input) {
                if let Err(e) = socket.send(bottle) {
                    // An AC not up yet (an ICMP error): the device retries.
                    tracing::debug!(error = %e, "send to the AC failed");
                }
            }
            if let Ok(mut c) = self.counters.lock() {
                c.line = decoder.stats();
            }
        }
    }

    /// The AC's datagrams, queued for the line.
    fn receive_from_ac(self, socket: UdpSocket, queue: &LineQueue) {
        let mut buf = vec![0u8; MAX_BOTTLE_LEN];
        loop {
            let n = match socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e) if retry(&e) => continue,
                // An ICMP error about the AC (not up yet, a firewall): the device retries.
                Err(e) => {
                    tracing::debug!(error = %e, "receive from the AC failed");
                    std::thread::sleep(BACKOFF);
                    continue;
                }
            };
            if queue.push(&buf[..n]) != Pushed::Queued {
                if let Ok(mut c) = self.counters.lock() {
                    (c.queue_dropped, c.queue_duplicates) = queue.dropped();
                }
            }
        }
    }

    /// The queued bottles, framed, to the device, control first.
    fn forward_to_serial(self, mut port: TTYPort, queue: &LineQueue) {
        let mut pace = self.baud.map(Pace::new);
        let mut frame = Vec::new();
        loop {
            let Some(bottle) = queue.pop(READ_TIMEOUT) else {
                continue;
            };
            frame.clear();
            push_serial_frame(&bottle, &mut frame);
            wait(&mut pace, frame.len());
            if let Err(e) = write_all(&mut port, &frame) {
                return self.fail("serial write", e);
            }
            if let Ok(mut c) = self.counters.lock() {
                c.to_serial += 1;
            }
        }
    }
}

/// Waits as long as the line takes for `bytes` more, when it is paced.
fn wait(pace: &mut Option<Pace>, bytes: usize) {
    if let Some(pace) = pace {
        std::thread::sleep(pace.send(bytes));
    }
}

/// Writes `frame` whole, however long the line takes to take it (a slow UART, an emulator
/// paused with its buffer full).
fn write_all(port: &mut TTYPort, frame: &[u8]) -> io::Result<()> {
    let mut rest = frame;
    while !rest.is_empty() {
        match port.write(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(e) if retry(&e) => {}
            Err(e) => return Err(e),
        }
    }
    port.flush()
}

/// A read or write that found nothing to do yet, or was interrupted: try again.
fn retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}
