//! The attacker's command line and the attacks it runs at once, each on a thread of its
//! own, until the deadline.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::forge::Forged;
use crate::hold::{hold_quic, hold_tcp, HoldSummary};
use crate::inject::{send_on_own_connection, Delivery, FrameStream, SourcePool};
use crate::junk::{junk, BROKEN_PREFIXES};
use crate::{loopback, recording, AttackError, Pace};
use pcxses_program::transport::{DeviceTlsArgs, Transport};

/// The attacker's command line: which attacks, how many of each, for how long.
#[derive(clap::Parser, Debug)]
#[command(version, about = "Attacks a PCXSES AC on this host, to test it")]
pub struct AttackArgs {
    /// The AC's address (loopback only).
    #[arg(long)]
    pub target: SocketAddr,
    /// The AC's transport. Over QUIC, junk, forged and replayed bottles go out as plain
    /// datagrams.
    #[arg(long, value_enum, default_value = "udp")]
    pub transport: Transport,
    /// How long the attack lasts at most, milliseconds.
    #[arg(long, default_value_t = 3_000)]
    pub duration_ms: u64,
    /// Hold up to this many connections (TCP, QUIC).
    #[arg(long, default_value_t = 0)]
    pub hold: usize,
    /// Send this much junk: datagrams, or frames on rotating connections.
    #[arg(long, default_value_t = 0)]
    pub junk: usize,
    /// Send this many forged bottles for made-up sessions to the AC.
    #[arg(long, default_value_t = 0)]
    pub forge: usize,
    /// Send the same forged bottles to each of these device addresses too (UDP).
    #[arg(long)]
    pub device: Vec<SocketAddr>,
    /// Send the bottles recorded in this file to the AC.
    #[arg(long)]
    pub replay: Option<PathBuf>,
    /// Send the recording this many times.
    #[arg(long, default_value_t = 1)]
    pub replay_times: usize,
    /// Source ports datagrams come from, in turn.
    #[arg(long, default_value_t = 64)]
    pub sources: usize,
    /// Seed of the junk and of the forged sessions.
    #[arg(long, default_value_t = 0x9e37_79b9_7f4a_7c15)]
    pub seed: u64,
    /// QUIC hold: the stranger's TLS files, a device certificate of the AC's device CA.
    #[command(flatten)]
    pub tls: DeviceTlsArgs,
    /// QUIC hold: the device name the stranger claims in its GOOD_MORNINGs.
    #[arg(long, default_value = "mallory")]
    pub claim: String,
}

/// What was sent of one kind: in all, and known to have been read by the AC (over TCP,
/// a connection the AC closed after reading it; over datagrams nobody can tell).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Sent {
    /// Sent.
    pub sent: u64,
    /// Known to have been read.
    pub read: u64,
}

impl Sent {
    fn add(&mut self, d: Delivery) {
        self.sent += u64::from(d != Delivery::NotSent);
        self.read += u64::from(d == Delivery::Read);
    }
}

/// Runs every attack the arguments ask for at once and returns the summary.
pub fn run(args: &AttackArgs) -> Result<Value, AttackError> {
    let target = loopback(args.target)?;
    for d in &args.device {
        loopback(*d)?;
    }
    let recorded = args
        .replay
        .as_deref()
        .map(recording::read)
        .transpose()?
        .unwrap_or_default();
    let tls = match (args.transport, args.hold) {
        (Transport::Quic, 1..) => Some(args.tls.load().map_err(AttackError::Tls)?),
        _ => None,
    };
    let started = Instant::now();
    let deadline = started + Duration::from_millis(args.duration_ms);
    let datagrams = args.transport != Transport::Tcp;
    std::thread::scope(|scope| {
        let hold = scope.spawn(|| match (args.transport, &tls) {
            (_, _) if args.hold == 0 => Ok(HoldSummary::default()),
            (Transport::Tcp, _) => Ok(hold_tcp(target, args.hold, deadline)),
            (Transport::Quic, Some(tls)) => {
                hold_quic(target, args.hold, tls, &args.claim, deadline).map_err(AttackError::from)
            }
            _ => Ok(HoldSummary::default()),
        });
        let junk = scope.spawn(|| send_junk(args, target, datagrams, deadline));
        let forge = scope.spawn(|| send_forged(args, target, datagrams, deadline));
        let replay = scope.spawn(|| send_all(args, target, &recorded, datagrams, deadline));
        let hold = hold.join().expect("the hold thread")?;
        let junk = junk.join().expect("the junk thread")?;
        let (forged, to_devices) = forge.join().expect("the forge thread")?;
        let replayed = replay.join().expect("the replay thread")?;
        let bottles = forged.values().fold(replayed, |a, s| Sent {
            sent: a.sent + s.sent,
            read: a.read + s.read,
        });
        Ok(json!({
            "event": "attack_summary",
            "transport": args.transport.name(),
            "target": target.to_string(),
            "elapsed_ms": started.elapsed().as_millis() as u64,
            "hold": hold,
            "junk": junk,
            "forged": forged,
            "forged_to_devices": to_devices,
            "replayed": replayed,
            "bottles": bottles,
        }))
    })
}

/// Junk as datagrams from rotating source ports, or as frames on connections of 100
/// frames each that end with a broken length prefix.
fn send_junk(
    args: &AttackArgs,
    target: SocketAddr,
    datagrams: bool,
    deadline: Instant,
) -> Result<Sent, AttackError> {
    let mut s = Sent::default();
    if args.junk == 0 {
        return Ok(s);
    }
    let mut rng = args.seed | 1;
    let pace = Pace::new(args.junk, deadline);
    if datagrams {
        let mut pool = SourcePool::bind(args.sources, target)?;
        for i in 0..args.junk {
            if !pace.wait(i) {
                break;
            }
            s.sent += u64::from(pool.send(target, &junk(&mut rng, i)));
        }
        return Ok(s);
    }
    let mut stream = FrameStream::new(target);
    let mut frame = Vec::new();
    for i in 0..args.junk {
        if !pace.wait(i) {
            break;
        }
        frame.clear();
        pcxses_core::frame::push_frame(&junk(&mut rng, i), &mut frame);
        s.sent += u64::from(stream.write(&frame));
        if i % 100 == 99 {
            let _ = stream.write(BROKEN_PREFIXES[i / 100 % BROKEN_PREFIXES.len()]);
            stream.rotate();
        }
    }
    Ok(s)
}

type ForgedSummary = (BTreeMap<&'static str, Sent>, BTreeMap<&'static str, Sent>);

/// Forged bottles to the AC (and the devices given), each kind in turn.
fn send_forged(
    args: &AttackArgs,
    target: SocketAddr,
    datagrams: bool,
    deadline: Instant,
) -> Result<ForgedSummary, AttackError> {
    let (mut to_ac, mut to_devices) = (BTreeMap::new(), BTreeMap::new());
    if args.forge == 0 {
        return Ok((to_ac, to_devices));
    }
    let mut rng = args.seed.rotate_left(17) | 1;
    let pace = Pace::new(args.forge, deadline);
    let mut pool = SourcePool::bind(args.sources.min(16), target)?;
    for i in 0..args.forge {
        if !pace.wait(i) {
            break;
        }
        let (kind, bottle) = Forged::nth(&mut rng, i);
        let sent: &mut Sent = to_ac.entry(kind.name()).or_default();
        if datagrams {
            sent.sent += u64::from(pool.send(target, &bottle));
        } else {
            sent.add(send_on_own_connection(target, &bottle, deadline));
        }
        for d in &args.device {
            let sent: &mut Sent = to_devices.entry(kind.name()).or_default();
            sent.sent += u64::from(pool.send(*d, &bottle));
        }
    }
    Ok((to_ac, to_devices))
}

/// The recorded bottles, `replay_times` times over.
fn send_all(
    args: &AttackArgs,
    target: SocketAddr,
    bottles: &[Vec<u8>],
    datagrams: bool,
    deadline: Instant,
) -> Result<Sent, AttackError> {
    let mut s = Sent::default();
    let total = bottles.len() * args.replay_times;
    if total == 0 {
        return Ok(s);
    }
    let pace = Pace::new(total, deadline);
    let mut pool = SourcePool::bind(args.sources.min(16), target)?;
    for (i, bottle) in bottles.iter().cycle().take(total).enumerate() {
        if !pace.wait(i) {
            break;
        }
        if datagrams {
            s.sent += u64::from(pool.send(target, bottle));
        } else {
            s.add(send_on_own_connection(target, bottle, deadline));
        }
    }
    Ok(s)
}
