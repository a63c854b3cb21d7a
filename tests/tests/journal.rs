//! The journal contract of the controller: every change is recorded and the journal
//! committed before any output of the drain that follows it is handed out; a failed commit
//! hands out no transmit; the records are small, and they restore the AC exactly.

use std::sync::{Arc, Mutex};

use pcxses_core::controller::{
    CommitError, ComputationId, ComputationSpec, ControllerEvent, DeviceId, DeviceSpec, Journal,
    Placement,
};
use pcxses_core::{
    Controller, ControllerConfig, Device, DeviceConfig, Instant, LinkId, MemoryRepository, Output,
};
use pcxses_tests::lab::Lab;

/// What the journal saw, in order, shared with the test.
#[derive(Default)]
struct Log {
    calls: Vec<&'static str>,
    fail: bool,
    /// The journal's store refuses this AC's writes (it lost its lease).
    lapsed: bool,
}

struct Recorder(Arc<Mutex<Log>>);

impl Journal for Recorder {
    fn record(&mut self, _: &[u8]) {
        self.0.lock().unwrap().calls.push("record");
    }

    fn commit(&mut self, _: &Controller) -> Result<(), CommitError> {
        let mut log = self.0.lock().unwrap();
        log.calls.push("commit");
        if log.fail {
            return Err(CommitError);
        }
        Ok(())
    }

    fn holds(&self) -> bool {
        !self.0.lock().unwrap().lapsed
    }
}

fn ac(log: &Arc<Mutex<Log>>) -> Controller {
    let mut repo = MemoryRepository::default();
    repo.insert("c0", vec![0; 10]);
    let config = ControllerConfig::new(
        1,
        vec![DeviceSpec::new("dev0", &["comp0"])],
        vec![ComputationSpec::new("comp0", "c0")],
    );
    Controller::new(config, repo, Instant::from_millis(0))
        .unwrap()
        .with_journal(Box::new(Recorder(log.clone())))
}

/// Drains `ac`, noting in the log where each output was handed out.
fn drain(ac: &mut Controller, log: &Arc<Mutex<Log>>) -> (Vec<Vec<u8>>, Vec<ControllerEvent>) {
    let (mut out, mut events) = (Vec::new(), Vec::new());
    loop {
        match ac.poll_output() {
            Output::Transmit(t) => {
                out.push(t.bytes.to_vec());
                log.lock().unwrap().calls.push("transmit");
            }
            Output::Event(e) => {
                events.push(e);
                log.lock().unwrap().calls.push("event");
            }
            Output::Timeout(_) => return (out, events),
        }
    }
}

#[test]
fn nothing_is_acknowledged_before_the_journal_holds_it() {
    let log = Arc::new(Mutex::new(Log::default()));
    let mut ac = ac(&log);
    let now = Instant::from_millis(1);
    let mut dev = Device::new(DeviceConfig::new("dev0", 3), now);
    dev.handle_timeout(now);
    let round = |ac: &mut Controller, dev: &mut Device| {
        let mut to_ac = Vec::new();
        loop {
            match dev.poll_output() {
                Output::Transmit(t) => to_ac.push(t.bytes.to_vec()),
                Output::Event(_) => {}
                Output::Timeout(_) => break,
            }
        }
        for bytes in to_ac {
            let _ = ac.handle_receive(now, LinkId(1), &bytes, None);
        }
        let (out, events) = drain(ac, &log);
        for b in &out {
            let _ = dev.handle_receive(now, b);
        }
        (out, events)
    };
    round(&mut ac, &mut dev);
    dev.set_state(now, "comp0", b"state one").unwrap();
    dev.handle_timeout(Instant::from_millis(2_000));
    let (out, events) = round(&mut ac, &mut dev);
    assert!(!out.is_empty());
    assert!(events
        .iter()
        .any(|e| matches!(e, ControllerEvent::StateStored { .. })));
    // Every output comes after the commit of the records of what led to it.
    let calls = log.lock().unwrap().calls.clone();
    assert!(calls.contains(&"record"), "{calls:?}");
    for (i, _) in calls
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == "transmit" || **c == "event")
    {
        let last_record = calls[..i].iter().rposition(|c| *c == "record");
        let last_commit = calls[..i].iter().rposition(|c| *c == "commit");
        assert!(
            last_commit >= last_record,
            "an output before its commit: {calls:?}"
        );
    }
    // A journal that fails: the drain's transmits and events are dropped and the runtime
    // is told.
    log.lock().unwrap().fail = true;
    dev.set_state(now, "comp0", b"state two").unwrap();
    dev.handle_timeout(Instant::from_millis(4_000));
    let dropped = ac.stats().dropped_transmits;
    let (out, events) = round(&mut ac, &mut dev);
    assert!(
        out.is_empty(),
        "{} transmits after a failed commit",
        out.len()
    );
    assert!(
        matches!(events[..], [ControllerEvent::JournalFailed { .. }]),
        "{events:?}"
    );
    assert!(ac.stats().dropped_transmits > dropped);

    // A journal that no longer holds: even HELLO acks, which change nothing, stay in.
    log.lock().unwrap().fail = false;
    round(&mut ac, &mut dev);
    dev.handle_timeout(Instant::from_millis(5_000));
    let (out, _) = round(&mut ac, &mut dev);
    assert!(!out.is_empty(), "no HELLO ack while the journal holds");
    log.lock().unwrap().lapsed = true;
    dev.handle_timeout(Instant::from_millis(6_000));
    let dropped = ac.stats().dropped_transmits;
    let (out, events) = round(&mut ac, &mut dev);
    assert!(
        out.is_empty(),
        "{} transmits from a lapsed journal",
        out.len()
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, ControllerEvent::JournalFailed { .. })));
    assert!(ac.stats().dropped_transmits > dropped);
}

#[test]
fn a_migration_among_many_devices_records_a_few_small_changes_not_a_snapshot() {
    let mut lab = Lab::new(200, |_| {});
    let stored = lab.journal_ac();
    lab.run(300);
    let now = lab.now;
    lab.device(0)
        .set_state(now, "comp0", b"sixteen bytes!!!")
        .unwrap();
    lab.run(200);
    let settled = stored.lock().unwrap().changes.len();
    // HELLOs change nothing persisted.
    lab.run(1_000);
    assert_eq!(stored.lock().unwrap().changes.len(), settled);
    lab.crash(0);
    lab.run(1_000);
    let Some(Placement::Running(DeviceId(target))) = lab.ac().placement(ComputationId(0)) else {
        panic!(
            "comp0 was not moved: {:?}",
            lab.ac().placement(ComputationId(0))
        );
    };
    assert_ne!(target, 0);
    let s = stored.lock().unwrap().clone();
    let failover = &s.changes[settled..];
    let snapshot = lab.ac().snapshot().len();
    // The dead device, its computation, the target and the MORPH counter, a few times.
    assert!(
        (4..=10).contains(&failover.len()),
        "{} records",
        failover.len()
    );
    let largest = failover.iter().map(Vec::len).max().unwrap_or(0);
    assert!(
        largest * 50 < snapshot,
        "a {largest}-byte record against a {snapshot}-byte snapshot"
    );
    // And they restore exactly the AC they came from.
    let now = lab.now;
    let from_journal = s
        .restore(lab.ac_config.clone(), lab.repo.clone(), now)
        .unwrap();
    let from_snapshot = Controller::new(lab.ac_config.clone(), lab.repo.clone(), now)
        .unwrap()
        .restore(&lab.ac().snapshot(), [], now)
        .unwrap();
    assert_eq!(from_journal.snapshot(), from_snapshot.snapshot());
    assert_eq!(
        from_journal.lkgs(ComputationId(0)).unwrap().0,
        b"sixteen bytes!!!"
    );
}
