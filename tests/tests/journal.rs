//! The journal contract of the controller: every event of a drain is recorded and the
//! journal committed before any transmit of that drain is handed out; a failed commit
//! hands out none of them.

use std::sync::{Arc, Mutex};

use pcxses_core::controller::{ComputationSpec, ControllerEvent, DeviceSpec, Journal};
use pcxses_core::{
    Controller, ControllerConfig, Device, DeviceConfig, Input, Instant, LinkId, MemoryRepository,
    Output,
};

/// What the journal saw, in order, shared with the test.
#[derive(Default)]
struct Log {
    calls: Vec<&'static str>,
    fail: bool,
}

struct Recorder(Arc<Mutex<Log>>);

impl Journal for Recorder {
    fn record(&mut self, _: &Controller, event: &ControllerEvent) {
        let what = match event {
            ControllerEvent::StateStored { .. } => "state",
            _ => "event",
        };
        self.0.lock().unwrap().calls.push(what);
    }

    fn commit(&mut self, _: &Controller) -> std::io::Result<()> {
        let mut log = self.0.lock().unwrap();
        log.calls.push("commit");
        if log.fail {
            return Err(std::io::Error::other("disk full"));
        }
        Ok(())
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

/// Drains `ac`, noting in the log where each transmit was handed out.
fn drain(ac: &mut Controller, log: &Arc<Mutex<Log>>) -> (Vec<Vec<u8>>, Vec<ControllerEvent>) {
    let (mut out, mut events) = (Vec::new(), Vec::new());
    loop {
        match ac.poll_output() {
            Output::Transmit(t) => {
                out.push(t.bytes.to_vec());
                log.lock().unwrap().calls.push("transmit");
            }
            Output::Event(e) => events.push(e),
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
    let _ = dev.handle_input(Input::Timeout(now));
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
            let _ = ac.handle_input(Input::Receive {
                now,
                from: LinkId(1),
                bytes: &bytes,
                identity: None,
            });
        }
        let (out, events) = drain(ac, &log);
        for b in &out {
            let _ = dev.handle_input(Input::Receive {
                now,
                from: LinkId(0),
                bytes: b,
                identity: None,
            });
        }
        (out, events)
    };
    round(&mut ac, &mut dev);
    dev.set_state(now, "comp0", b"state one").unwrap();
    let _ = dev.handle_input(Input::Timeout(Instant::from_millis(2_000)));
    let (out, events) = round(&mut ac, &mut dev);
    assert!(!out.is_empty());
    assert!(events
        .iter()
        .any(|e| matches!(e, ControllerEvent::StateStored { .. })));
    // In every drain, the records and the commit come before the first transmit.
    let calls = log.lock().unwrap().calls.clone();
    let state = calls
        .iter()
        .position(|c| *c == "state")
        .expect("the state was recorded");
    let commit = state
        + calls[state..]
            .iter()
            .position(|c| *c == "commit")
            .expect("a commit");
    assert!(!calls[state..commit].contains(&"transmit"), "{calls:?}");
    for (i, _) in calls.iter().enumerate().filter(|(_, c)| **c == "transmit") {
        let last_record = calls[..i]
            .iter()
            .rposition(|c| *c == "state" || *c == "event");
        let last_commit = calls[..i].iter().rposition(|c| *c == "commit");
        assert!(
            last_commit >= last_record,
            "a transmit before its commit: {calls:?}"
        );
    }
    // A journal that fails: the drain's transmits are dropped and the runtime is told.
    log.lock().unwrap().fail = true;
    dev.set_state(now, "comp0", b"state two").unwrap();
    let _ = dev.handle_input(Input::Timeout(Instant::from_millis(4_000)));
    let dropped = ac.stats().dropped_transmits;
    let (out, events) = round(&mut ac, &mut dev);
    assert!(
        out.is_empty(),
        "{} transmits after a failed commit",
        out.len()
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, ControllerEvent::JournalFailed { .. })));
    assert!(ac.stats().dropped_transmits > dropped);
}
