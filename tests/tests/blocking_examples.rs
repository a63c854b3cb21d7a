//! The blocking UDP examples of `pcxses-core` (`udp_ac`, `udp_device`) as real processes
//! on 127.0.0.1, against each other and the device against the AC daemon (`pcxses-ac`):
//! the device joins, the AC stores its states, the device leaves and exits with status 0.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use pcxses_demo::artifacts;
use pcxses_tests::programs::{is, World};

/// How long the whole exchange may take: a join, three states at one a second, a leave.
const LIMIT: Duration = Duration::from_secs(60);

/// The executables of the blocking examples `names` of `pcxses-core`, built for this
/// test's profile.
fn build_examples(names: &[&str]) -> Vec<PathBuf> {
    artifacts::examples("pcxses-core", names).expect("the examples build")
}

/// A child process whose output lines (stdout and stderr) arrive on a channel, killed when
/// dropped if still running.
struct Process {
    child: Child,
    lines: Receiver<String>,
    /// Every line so far.
    seen: Vec<String>,
}

impl Process {
    fn spawn(exe: &PathBuf, args: &[&str]) -> Process {
        let mut child = Command::new(exe)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the example starts");
        let (tx, lines) = mpsc::channel();
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().expect("piped"));
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().expect("piped"));
        for (stream, prefix) in [(out, ""), (err, "stderr: ")] {
            let tx = tx.clone();
            thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(format!("{prefix}{line}")).is_err() {
                        break;
                    }
                }
            });
        }
        Process {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line, waiting until `deadline`; `None` once the process closed its output.
    fn next_line(&mut self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => panic!("timed out; output so far: {:#?}", self.seen),
        }
    }

    /// Reads every line until the process closes its output, then its exit status.
    fn finish(&mut self, deadline: Instant) -> ExitStatus {
        while self.next_line(deadline).is_some() {}
        self.child.wait().expect("the process was started")
    }

    fn count(&self, what: &str) -> usize {
        self.seen.iter().filter(|l| l.starts_with(what)).count()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn the_udp_device_joins_the_udp_ac_and_its_states_are_stored() {
    let exes = build_examples(&["udp_ac", "udp_device"]);
    let deadline = Instant::now() + LIMIT;
    let limit = LIMIT.as_secs().to_string();
    let mut ac = Process::spawn(
        &exes[0],
        &[
            "--listen",
            "127.0.0.1:0",
            "--device",
            "pump",
            "--exit-after-states",
            "3",
            "--time-limit",
            &limit,
        ],
    );
    // The AC tells where it listens before anything else.
    let first = ac.next_line(deadline).expect("the AC's address");
    let addr = first
        .strip_prefix("listening on ")
        .expect("`listening on ADDR` first");
    let mut device = Process::spawn(
        &exes[1],
        &["--ac", addr, "--name", "pump", "--exit-after-states", "3"],
    );

    let status = device.finish(deadline);
    assert!(status.success(), "device: {status}; {:#?}", device.seen);
    assert_eq!(device.count("Joined {"), 1, "{:#?}", device.seen);
    assert!(device
        .seen
        .iter()
        .any(|l| l.contains("run: [\"counter-pump\"]")));
    assert_eq!(device.count("StateStored {"), 3, "{:#?}", device.seen);
    let last = device.seen.iter().rfind(|l| !l.starts_with("stderr: "));
    assert_eq!(last.map(String::as_str), Some("Left"), "{:#?}", device.seen);

    let status = ac.finish(deadline);
    assert!(status.success(), "AC: {status}; {:#?}", ac.seen);
    assert_eq!(ac.count("DeviceJoined {"), 1, "{:#?}", ac.seen);
    assert!(ac.count("StateStored {") >= 3, "{:#?}", ac.seen);
    assert_eq!(ac.count("DeviceLeft {"), 1, "{:#?}", ac.seen);
    assert_eq!(ac.count("DeviceFailed {"), 0, "{:#?}", ac.seen);
}

#[test]
fn the_udp_device_joins_the_ac_daemon_and_its_states_are_stored() {
    let exes = build_examples(&["udp_device"]);
    let mut w = World::new("udp", "blocking-device", 64);
    w.start_ac(None);
    let deadline = Instant::now() + LIMIT;
    let mut device = Process::spawn(
        &exes[0],
        &[
            "--ac",
            &w.addr,
            "--name",
            "alpha",
            "--exit-after-states",
            "3",
        ],
    );

    let status = device.finish(deadline);
    assert!(status.success(), "device: {status}; {:#?}", device.seen);
    assert!(device
        .seen
        .iter()
        .any(|l| l.contains("run: [\"counter-alpha\"]")));
    assert_eq!(device.count("StateStored {"), 3, "{:#?}", device.seen);
    let last = device.seen.iter().rfind(|l| !l.starts_with("stderr: "));
    assert_eq!(last.map(String::as_str), Some("Left"), "{:#?}", device.seen);

    let ac = w.ac();
    ac.wait_for("the device's leave", |v| is(v, "device_left"));
    let stored = ac.events(|v| is(v, "state_stored") && v["computation"] == "counter-alpha");
    assert!(stored.len() >= 3, "{stored:?}");
    assert!(ac.events(|v| is(v, "device_failed")).is_empty());
}
