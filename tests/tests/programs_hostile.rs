//! Hostile: the real `pcxses-ac`, with few files allowed, and two devices heartbeating at
//! HELLO 100 ms / dead 300 ms, attacked on 127.0.0.1 by `pcxses-attack` for TCP, UDP and
//! QUIC: it holds connections beyond the AC's file limit, floods junk from many source
//! ports, injects forged CHALLENGE, MORPH_FAIL, REJECT, GOOD_BYE and HELLO bottles and,
//! with pre-shared keys, replays recorded sealed bottles. After the attack a new device
//! joins within 2 s, neither device was declared dead or lost its session, every
//! injected bottle that reached the AC was refused and counted, its memory stayed bounded,
//! and it still stops on SIGTERM. A device takes bottles from the AC's address only, so
//! forged CHALLENGEs and MORPH_FAILs reach one only on the path: a link replaces one
//! bottle to it, and it must still join, or host, as if nothing had come.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pcxses_attack::forge::{challenge_for, Forged};
use pcxses_core::wire::Bottle;
use pcxses_core::Limits;
use pcxses_demo::link::{Direction, Link, LinkShape, Tap};
use pcxses_program::transport::Transport;
use serde_json::Value;

use pcxses_tests::programs::{self, attack_executable, attacker, is, path, Proc, Setup, World};

/// The AC's limit of open files: below the connections the attacker holds over TCP.
const NOFILE: u32 = 256;
/// TCP connections the attacker holds: more than the AC may open.
const HOLD_TCP: &str = "300";
/// QUIC connections the attacker holds, each a full handshake by a certified stranger.
const HOLD_QUIC: &str = "64";
/// How long the attack lasts: ten dead intervals.
const ATTACK_MS: &str = "3000";
/// How long a new device may take to join once the attack stopped.
const JOIN_AFTER: Duration = Duration::from_secs(2);
/// How much the AC's resident memory may grow under the attack. What it may hold for the
/// attacker is bounded by the adapters: over TCP, a 16 KiB read buffer per connection
/// (at most 256 files: 4 MiB) and 4,096 queued frames of at most 1,200 bytes of junk
/// (5 MiB); over UDP one 64 KiB receive buffer; over QUIC, quinn's per-connection state
/// for 64 connections. Twice their sum leaves room for the allocator's slack.
const RSS_GROWTH_KB: u64 = 24 * 1024;

/// One attacked AC at a time: the machine's cores go to the AC under attack, not to other
/// tests' attackers.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A link in front of the AC that records every sealed bottle the devices send through it.
struct Recorder {
    link: Link,
    sealed: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Recorder {
    fn start(w: &World) -> Recorder {
        let sealed = Arc::new(Mutex::new(Vec::new()));
        let record = sealed.clone();
        let tap: Tap = Box::new(move |dir, bytes: Vec<u8>| {
            // A sealed bottle carries a trailer after its last field: it is no plain bottle.
            if dir == Direction::ToAc && Bottle::decode(&bytes, &Limits::DEFAULT).is_err() {
                record.lock().unwrap().push(bytes.clone());
            }
            Some(bytes)
        });
        let transport = match w.transport {
            "tcp" => Transport::Tcp,
            _ => Transport::Udp,
        };
        let upstream = w.addr.parse().unwrap();
        let link = Link::start(transport, upstream, LinkShape::default(), Some(tap)).unwrap();
        Recorder { link, sealed }
    }

    /// Writes what was recorded to `file`; returns how many bottles it holds.
    fn save(&self, file: &Path) -> usize {
        let sealed = self.sealed.lock().unwrap();
        pcxses_attack::recording::write(file, &sealed).unwrap();
        sealed.len()
    }
}

/// The next `stats` event of the AC, printed after now.
fn fresh_stats(ac: &Proc) -> Value {
    let seen = ac.events(|v| is(v, "stats")).len();
    ac.wait_for_nth("the AC's stats", seen + 1, |v| is(v, "stats"));
    ac.events(|v| is(v, "stats")).pop().unwrap()
}

/// A count in the attacker's summary.
fn sent_of(kind: &Value, what: &str) -> u64 {
    kind[what].as_u64().unwrap_or(0)
}

fn counter(stats: &Value, name: &str) -> u64 {
    stats[name]
        .as_u64()
        .unwrap_or_else(|| panic!("no {name} in {stats}"))
}

/// The local port of process `pid`'s UDP socket, from `/proc`.
fn udp_port_of(pid: u32) -> Option<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    udp_sockets()
        .into_iter()
        .find(|s| inodes.contains(&s.inode))
        .map(|s| s.port)
}

/// Datagrams the kernel dropped for want of room at the UDP socket bound to `port`.
fn udp_drops(port: u16) -> u64 {
    udp_sockets()
        .into_iter()
        .filter(|s| s.port == port)
        .map(|s| s.drops)
        .sum()
}

/// One line of `/proc/net/udp`.
struct UdpSocket {
    port: u16,
    inode: String,
    drops: u64,
}

fn udp_sockets() -> Vec<UdpSocket> {
    let text = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            Some(UdpSocket {
                port,
                inode: f.get(9)?.to_string(),
                drops: f.get(12)?.parse().ok()?,
            })
        })
        .collect()
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// Runs the attacker against the AC with `args`; returns its summary.
fn attack(w: &World, args: &[String]) -> Value {
    let attacker = Proc::spawn(Command::new(attack_executable()).args(args).args([
        "--target",
        &w.addr,
        "--transport",
        w.transport,
        "--duration-ms",
        ATTACK_MS,
    ]));
    let summary = attacker.wait_for("the attack's summary", |v| is(v, "attack_summary"));
    eprintln!("{} attack: {summary}", w.transport);
    summary
}

fn hostile(transport: &'static str, keyed: bool) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let test = if keyed { "hostile-keyed" } else { "hostile" };
    let w = World::with(
        transport,
        test,
        Setup {
            code_bytes: 4_000,
            keyed,
            ac_nofile: Some(NOFILE),
            dead_ms: Some(300),
            ..Setup::default()
        },
    );
    // With keys, the devices reach the AC through a link that records their sealed bottles.
    let recorder = keyed.then(|| Recorder::start(&w));
    let via = recorder
        .as_ref()
        .map_or(w.addr.clone(), |r| r.link.local_addr().to_string());
    let alpha = w.device_at(&via, "alpha", &[]);
    let beta = w.device_at(&via, "beta", &[]);
    for d in [&alpha, &beta] {
        d.wait_for_nth("ten states at the AC", 10, |v| is(v, "state_stored"));
    }
    // What the devices went through before the attack (over QUIC a device may fence itself
    // once at start-up, when its handshake outlasts the lease of its first GOOD_MORNING).
    let sessions = |d: &Proc| d.events(|v| is(v, "joined") || is(v, "stop"));
    let settled = [sessions(&alpha), sessions(&beta)];
    let before = fresh_stats(w.ac());
    let stats_before = w.ac().events(|v| is(v, "stats")).len();
    let drops_before = udp_drops(port_of(&w.addr));

    let file = |f: &str| path(&w.dir.join(f)).to_string();
    let mut args = ["--junk", "6000", "--forge", "600", "--sources", "512"]
        .map(String::from)
        .to_vec();
    match transport {
        "tcp" => args.extend(["--hold", HOLD_TCP].map(String::from)),
        // A stranger certified by the devices' CA, claiming to be alpha.
        "quic" => args.extend(
            [
                "--hold",
                HOLD_QUIC,
                "--claim",
                "alpha",
                "--ac-ca",
                &file("ca.pem"),
                "--cert",
                &file("mallory.pem"),
                "--key",
                &file("mallory.key"),
            ]
            .map(String::from),
        ),
        _ => {}
    }
    // The forged bottles go to alpha's own socket too: only the AC's address reaches it.
    if transport == "udp" && !keyed {
        let port = udp_port_of(alpha.child.id()).expect("alpha's UDP socket");
        args.extend(["--device".into(), format!("127.0.0.1:{port}")]);
    }
    if let Some(r) = &recorder {
        assert!(
            r.save(&w.dir.join("recorded.bin")) > 0,
            "nothing sealed was recorded"
        );
        args.extend(["--replay", &file("recorded.bin"), "--replay-times", "3"].map(String::from));
    }
    let summary = attack(&w, &args);

    // The AC kept serving: it printed its counters every 200 ms.
    let printed = w.ac().events(|v| is(v, "stats")).len() - stats_before;
    assert!(
        printed >= 5,
        "the AC printed {printed} stats in the 3 s attack"
    );

    // A new device joins at once.
    let asked = Instant::now();
    let gamma = w.device("gamma");
    let joined =
        gamma.wait_until_within(JOIN_AFTER * 3, |o| o.lines.iter().any(|v| is(v, "joined")));
    let took = asked.elapsed();
    assert!(
        joined,
        "gamma did not join within {took:?} after the attack"
    );
    assert!(
        took <= JOIN_AFTER,
        "gamma took {took:?} to join after the attack"
    );
    // Several dead intervals more, as beta's counter shows (50 ms a tick).
    let now = programs::last_acked(&beta, "counter-beta");
    beta.wait_for("beta to count on for 0.5 s", |v| {
        is(v, "state_stored") && v["count"].as_u64().unwrap_or(0) >= now + 10
    });

    // Nobody was declared dead, and both devices kept the session they had.
    let deaths = w.ac().events(|v| is(v, "device_failed"));
    assert!(deaths.is_empty(), "false deaths: {deaths:?}");
    for ((name, d), settled) in [("alpha", &alpha), ("beta", &beta)]
        .into_iter()
        .zip(settled)
    {
        let now = sessions(d);
        assert_eq!(now[..], settled[..], "{name} lost its session");
    }

    // Every injected bottle that reached the AC was refused and counted. Over UDP every
    // datagram reaches it but those the kernel dropped at its full socket; over TCP, the
    // bottles on connections it closed after reading them; over QUIC only the stranger's
    // GOOD_MORNINGs get past TLS, and each REJECT it received answered one. A GOOD_BYE for
    // a session the AC does not know is answered, as §7.6 says, and changes nothing: it
    // is counted as a duplicate, not as a refusal.
    let sent = |kind: &str, what: &str| sent_of(&summary[kind], what);
    let reached = match transport {
        "udp" => {
            let drops = udp_drops(port_of(&w.addr)) - drops_before;
            let injected = sent("junk", "sent") + sent("bottles", "sent");
            injected.saturating_sub(drops)
        }
        "tcp" => sent("bottles", "read"),
        _ => sent("hold", "rejected"),
    };
    let good_byes = match transport {
        "udp" => sent_of(&summary["forged"]["good_bye"], "sent"),
        "tcp" => sent_of(&summary["forged"]["good_bye"], "read"),
        _ => 0,
    };
    assert!(
        reached > good_byes,
        "no injected bottle reached the AC: {summary}"
    );
    let delta = |v: &Value, name: &str| counter(v, name).saturating_sub(counter(&before, name));
    let enough = |v: &Value| {
        is(v, "stats")
            && delta(v, "received") >= reached
            && delta(v, "rejected") >= reached - good_byes
    };
    w.ac()
        .wait_until_within(Duration::from_secs(5), |o| o.lines.iter().any(enough));
    let after = w.ac().events(enough).into_iter().next();
    let after = after.unwrap_or_else(|| fresh_stats(w.ac()));
    let refused = delta(&after, "rejected");
    assert!(
        delta(&after, "received") >= reached && refused >= reached - good_byes,
        "{reached} injected bottles reached the AC ({good_byes} GOOD_BYEs), {refused} \
         refusals counted: {before} -> {after}"
    );
    if transport == "quic" {
        assert_eq!(
            summary["hold"]["joined"], 0,
            "the stranger joined: {summary}"
        );
    }

    // Memory stayed bounded throughout.
    let peak = w
        .ac()
        .events(|v| is(v, "stats"))
        .iter()
        .filter_map(|v| v["rss_kb"].as_u64())
        .max()
        .unwrap();
    let base = counter(&before, "rss_kb");
    let grown = peak.saturating_sub(base);
    eprintln!("{transport} hostile (keyed: {keyed}): RSS {base} KiB, peak {peak} KiB (+{grown}); {refused} refused");
    assert!(
        grown < RSS_GROWTH_KB,
        "RSS grew by {grown} KiB: {base} -> {peak}"
    );

    // And it still stops when told to.
    let ac = w.ac();
    ac.signal("TERM");
    ac.wait_closed_within(Duration::from_secs(5));
}

#[test]
fn tcp_an_attacked_ac_keeps_its_devices_and_admits_a_new_one() {
    hostile("tcp", false);
}

#[test]
fn udp_an_attacked_ac_keeps_its_devices_and_admits_a_new_one() {
    hostile("udp", false);
}

#[test]
fn quic_an_attacked_ac_keeps_its_devices_and_admits_a_new_one() {
    hostile("quic", false);
}

#[test]
fn tcp_with_keys_replayed_and_forged_bottles_are_refused_and_counted() {
    hostile("tcp", true);
}

#[test]
fn udp_with_keys_replayed_and_forged_bottles_are_refused_and_counted() {
    hostile("udp", true);
}

#[test]
fn the_attacker_refuses_an_address_off_this_host() {
    let out = Command::new(attack_executable())
        .args([
            "--target",
            "192.0.2.1:4700",
            "--junk",
            "10",
            "--duration-ms",
            "100",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(out.stdout.is_empty());
}

/// On the path, the one place a forged CHALLENGE reaches a device (its socket takes
/// datagrams from the AC's address only): the first CHALLENGE gamma gets is replaced by
/// one for its nonce with issue time 2^64−1. It may cost gamma one retry, not its join.
fn a_forged_challenge_delays_a_join_by_at_most_one_retry(transport: &'static str) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let setup = Setup {
        code_bytes: 4_000,
        keyed: true,
        dead_ms: Some(300),
        ..Setup::default()
    };
    let w = World::with(transport, "challenge", setup);
    let mut rng = 0x5eed;
    let mut forged = false;
    let link = attacker(&w, move |b| match b {
        Bottle::Challenge(c) if !forged => {
            forged = true;
            Some(challenge_for(c.nonce, &mut rng))
        }
        _ => None,
    });
    let asked = Instant::now();
    let gamma = w.device_at(&link.local_addr().to_string(), "gamma", &[]);
    let joined =
        gamma.wait_until_within(JOIN_AFTER * 3, |o| o.lines.iter().any(|v| is(v, "joined")));
    let took = asked.elapsed();
    assert!(
        joined,
        "gamma did not join within {took:?} of a forged CHALLENGE"
    );
    assert!(took <= JOIN_AFTER, "gamma took {took:?} to join");
}

/// On the path: a MORPH_FAIL for a made-up session with MORPH id 2^32−1 replaces one
/// HELLO_ACK to alpha. alpha refuses it, and when beta dies, takes over beta's counter.
fn a_forged_morph_fail_leaves_a_device_able_to_host(transport: &'static str) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let w = World::new(transport, "morph-fail", 4_000);
    let armed = Arc::new(AtomicBool::new(false));
    let fire = armed.clone();
    let mut rng = 0x5eed;
    let link = attacker(&w, move |b| match b {
        Bottle::HelloAck(_) if fire.swap(false, Ordering::SeqCst) => {
            Some(Forged::MorphFail.bottle(&mut rng))
        }
        _ => None,
    });
    let alpha = w.device_at(&link.local_addr().to_string(), "alpha", &[]);
    let beta = w.device("beta");
    for d in [&alpha, &beta] {
        d.wait_for("a state at the AC", |v| is(v, "state_stored"));
    }
    armed.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(2);
    while armed.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !armed.load(Ordering::SeqCst),
        "no HELLO_ACK crossed the link"
    );
    beta.signal("KILL");
    let installed = alpha.wait_until_within(Duration::from_secs(10), |o| {
        o.lines
            .iter()
            .any(|v| is(v, "install") && v["computation"] == "counter-beta")
    });
    let refused = alpha.events(|v| is(v, "morph_refused"));
    let ac = w.ac().events(|v| v["computation"] == "counter-beta");
    assert!(
        installed,
        "alpha did not take over counter-beta; it refused {refused:?}; the AC: {ac:?}"
    );
}

#[test]
fn tcp_on_the_path_a_forged_challenge_delays_a_join_by_at_most_one_retry() {
    a_forged_challenge_delays_a_join_by_at_most_one_retry("tcp");
}

#[test]
fn udp_on_the_path_a_forged_challenge_delays_a_join_by_at_most_one_retry() {
    a_forged_challenge_delays_a_join_by_at_most_one_retry("udp");
}

#[test]
fn tcp_on_the_path_a_forged_morph_fail_leaves_a_device_able_to_host() {
    a_forged_morph_fail_leaves_a_device_able_to_host("tcp");
}

#[test]
fn udp_on_the_path_a_forged_morph_fail_leaves_a_device_able_to_host() {
    a_forged_morph_fail_leaves_a_device_able_to_host("udp");
}
