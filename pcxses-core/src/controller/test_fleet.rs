//! A controller driven by bottles from a registry's devices, for unit tests: devices join,
//! HELLO, answer MORPHs and leave, time passes, and the controller is restored from its
//! journal.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use std::sync::{Arc, Mutex};

use super::journal::{CommitError, Journal};
use super::{Controller, ControllerConfig};
use crate::io::{LinkId, Output};
use crate::time::{ms, Instant};
use crate::wire::bottle::{
    Bottle, GoodBye, GoodMorning, Hello, MorphAck, MorphFail, MorphFailReason, StateMode,
};
use crate::wire::ids::{JoinNonce, SessionId};
use crate::MemoryRepository;

/// Device `i`'s name: name order is not registry order.
pub(super) fn device_name(i: usize) -> String {
    format!("d{}", 100 - i)
}

#[derive(Clone, Debug)]
pub(super) enum Op {
    Join {
        d: usize,
        authenticated: bool,
        slow: bool,
    },
    Hello(usize),
    /// Every device with a session sends a HELLO.
    HelloAll,
    Wait(u64),
    Ack(usize),
    Fail(usize),
    Leave(usize),
    Restore,
}

fn repo() -> MemoryRepository {
    let mut repo = MemoryRepository::default();
    repo.insert("code", alloc::vec![1; 40]);
    repo
}

/// What a journal was given: the records after the first snapshot.
#[derive(Clone, Default)]
struct Records(Arc<Mutex<Vec<Vec<u8>>>>);

impl Journal for Records {
    fn record(&mut self, change: &[u8]) {
        self.0.lock().unwrap().push(change.to_vec());
    }

    fn commit(&mut self, _: &Controller) -> Result<(), CommitError> {
        Ok(())
    }
}

/// `ac` with a journal: its snapshot now, and the records it will be given.
fn journaled(ac: Controller) -> (Controller, Vec<u8>, Records) {
    let snapshot = ac.snapshot();
    let records = Records::default();
    (
        ac.with_journal(Box::new(records.clone())),
        snapshot,
        records,
    )
}

pub(super) struct Fleet {
    pub(super) ac: Controller,
    config: ControllerConfig,
    snapshot: Vec<u8>,
    records: Records,
    pub(super) now: Instant,
    pub(super) wake: Instant,
    nonce: u64,
    /// Each device's latest session, from the acks.
    sessions: Vec<Option<SessionId>>,
    authenticated: Vec<bool>,
    /// MORPHs seen and not answered: target, session, id.
    pub(super) morphs: Vec<(usize, SessionId, u32)>,
}

impl Fleet {
    pub(super) fn new(config: ControllerConfig) -> Fleet {
        let n = config.devices.len();
        let ac = Controller::new(config.clone(), repo(), Instant::default()).unwrap();
        let (ac, snapshot, records) = journaled(ac);
        let mut fleet = Fleet {
            snapshot,
            records,
            ac,
            config,
            now: Instant::default(),
            wake: Instant::MAX,
            nonce: 0,
            sessions: alloc::vec![None; n],
            authenticated: alloc::vec![false; n],
            morphs: Vec::new(),
        };
        fleet.drain();
        fleet
    }

    fn drain(&mut self) {
        loop {
            match self.ac.poll_output() {
                Output::Transmit(t) => {
                    let d = t.to.0 as usize;
                    match Bottle::decode(t.bytes, &Default::default()) {
                        Ok(Bottle::GoodMorningAck(a)) => self.sessions[d] = Some(a.session),
                        Ok(Bottle::Morph(m)) if !self.morphs.iter().any(|x| x.2 == m.morph) => {
                            self.morphs.push((d, m.session, m.morph))
                        }
                        _ => {}
                    }
                }
                Output::Event(_) => {}
                Output::Timeout(at) => {
                    self.wake = at;
                    return;
                }
            }
        }
    }

    fn send(&mut self, d: usize, bottle: &Bottle<'_>) {
        let mut buf = [0u8; 256];
        let len = bottle.encode(&mut buf).unwrap();
        let name = device_name(d);
        let identity = self.authenticated[d].then_some(name.as_str());
        let _ = (self.ac).handle_receive(self.now, LinkId(d as u64), &buf[..len], identity);
        self.drain();
    }

    fn hello(&mut self, d: usize) {
        if let Some(session) = self.sessions[d] {
            let hello = Hello {
                session,
                seq: 1,
                state: None,
            };
            self.send(d, &Bottle::Hello(hello));
        }
    }

    pub(super) fn apply(&mut self, op: &Op) {
        let n = self.config.devices.len();
        match *op {
            Op::Join {
                d,
                authenticated,
                slow,
            } => {
                let d = d % n;
                self.nonce += 1;
                self.authenticated[d] = authenticated;
                let (hello_ms, dead_ms) = if slow { (1_000, 3_000) } else { (100, 300) };
                let name = device_name(d);
                let gm = Bottle::GoodMorning(GoodMorning {
                    device: &name,
                    nonce: JoinNonce(self.nonce.to_le_bytes()),
                    mode: StateMode::InHello,
                    hello_ms,
                    dead_ms,
                    max_bottle: 1200,
                });
                self.send(d, &gm);
            }
            Op::Hello(d) => self.hello(d % n),
            Op::HelloAll => (0..n).for_each(|d| self.hello(d)),
            Op::Wait(millis) => {
                let until = self.now + ms(millis as u32);
                for _ in 0..10_000 {
                    if self.wake > until {
                        self.now = until;
                        return;
                    }
                    self.now = self.now.max(self.wake);
                    self.ac.handle_timeout(self.now);
                    self.drain();
                }
                panic!("timers came due without end");
            }
            Op::Ack(i) | Op::Fail(i) if !self.morphs.is_empty() => {
                let (t, session, morph) = self.morphs.remove(i % self.morphs.len());
                let bottle = match op {
                    Op::Ack(_) => Bottle::MorphAck(MorphAck { session, morph }),
                    _ => Bottle::MorphFail(MorphFail {
                        session,
                        morph,
                        reason: MorphFailReason::Malformed,
                    }),
                };
                self.send(t, &bottle);
            }
            Op::Ack(_) | Op::Fail(_) => {}
            Op::Leave(d) => {
                if let Some(session) = self.sessions[d % n] {
                    self.send(d % n, &Bottle::GoodBye(GoodBye { session }));
                }
            }
            Op::Restore => {
                let records = self.records.0.lock().unwrap().clone();
                let changes = records.iter().map(Vec::as_slice);
                let config = self.config.clone();
                let ac = Controller::new(config, repo(), self.now).unwrap();
                let ac = ac.restore(&self.snapshot, changes, self.now).unwrap();
                (self.ac, self.snapshot, self.records) = journaled(ac);
                self.morphs.clear();
                self.drain();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::{ComputationSpec, DeviceSpec, SnapshotView};

    /// What `config` restores from `snapshot` and the records `fleet`'s journal was given
    /// after its own snapshot, in name order.
    fn restored(fleet: &Fleet, config: ControllerConfig, snapshot: &[u8]) -> SnapshotView {
        let records = fleet.records.0.lock().unwrap().clone();
        assert!(!records.is_empty(), "the fleet changed since its snapshot");
        let changes = records.iter().map(Vec::as_slice);
        let ac = Controller::new(config, repo(), fleet.now).unwrap();
        let ac = ac.restore(snapshot, changes, fleet.now).unwrap();
        let mut view = SnapshotView::decode(&ac.snapshot()).unwrap();
        view.devices.sort_by(|a, b| a.name.cmp(&b.name));
        view.computations.sort_by(|a, b| a.name.cmp(&b.name));
        view
    }

    /// Four devices, each running its own computation, joined; one has left since.
    fn fleet() -> (Fleet, ControllerConfig) {
        let names: Vec<String> = (0..4).map(|c| format!("c{c}")).collect();
        let comps = names.iter().map(|c| ComputationSpec::new(c, "code"));
        let devices = (0..4).map(|d| DeviceSpec::new(&device_name(d), &[&names[d]]));
        let config = ControllerConfig::new(1, devices.collect(), comps.collect());
        let mut fleet = Fleet::new(config.clone());
        for d in 0..4 {
            let (authenticated, slow) = (false, false);
            fleet.apply(&Op::Join {
                d,
                authenticated,
                slow,
            });
        }
        fleet.apply(&Op::HelloAll);
        fleet.apply(&Op::Leave(3));
        fleet.apply(&Op::Wait(100));
        (fleet, config)
    }

    #[test]
    fn a_journal_restores_alike_into_a_registry_listed_in_another_order() {
        let (fleet, config) = fleet();
        let mut reversed = config.clone();
        reversed.devices.reverse();
        reversed.computations.reverse();
        let alike = restored(&fleet, config, &fleet.snapshot);
        assert_eq!(restored(&fleet, reversed, &fleet.snapshot), alike);
        let live = alike.devices.iter().filter(|d| d.session.is_some());
        assert_eq!(live.count(), 3);
    }

    #[test]
    fn changes_to_parts_a_snapshot_lacks_are_restored_as_well() {
        let (fleet, config) = fleet();
        let whole = restored(&fleet, config.clone(), &fleet.snapshot);
        // A snapshot of a registry of the first two devices and computations alone.
        let mut half = config.clone();
        half.devices.truncate(2);
        half.computations.truncate(2);
        let snapshot = (Controller::new(half, repo(), Instant::default()).unwrap()).snapshot();
        assert_eq!(restored(&fleet, config, &snapshot), whole);
        let joined = whole.devices.iter().filter(|d| d.session.is_some());
        assert_eq!(joined.count(), 3);
    }
}
