//! The frames waiting for the serial line: the AC's control bottles (HELLO acks, MORPH
//! headers, answers) go before object code, so a MORPH that fills a slow line for seconds
//! does not hold back the acks that keep the device's fence lease. Each class is bounded
//! and drops what overflows, counted, as a router drops packets: a full object-code class
//! refuses the newcomer (the AC retransmits it), a full control class gives up its oldest
//! bottle (the newest acks renew the lease). A bottle identical to one still waiting (a
//! retransmission that overtook nothing) is dropped as well: the line would carry it
//! twice. Sealed bottles (pre-shared-key mode) carry a new counter on every send, so none
//! is ever identical; and as control bottles overtake object code, a chunk may wait behind
//! up to [`BOUND`] of them, within the device's replay window of 64 counters.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use pcxses_core::TransmitKind;

/// Bottles each class holds at most.
pub const BOUND: usize = 64;

#[derive(Default)]
struct Classes {
    control: VecDeque<Vec<u8>>,
    bulk: VecDeque<Vec<u8>>,
    dropped: u64,
    duplicates: u64,
}

/// What became of a bottle offered to the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    /// It waits for the line.
    Queued,
    /// The same bytes already wait: it was dropped.
    Duplicate,
    /// Its class is full: it was dropped, or for a control bottle the oldest waiting
    /// was.
    Full,
}

/// The bottles waiting for the line, shared by the thread that receives them and the one
/// that writes them.
#[derive(Default)]
pub struct LineQueue {
    classes: Mutex<Classes>,
    ready: Condvar,
}

impl LineQueue {
    /// Queues `bottle` in its class, unless the same bytes already wait there or the
    /// class is full.
    pub fn push(&self, bottle: &[u8]) -> Pushed {
        let Ok(mut c) = self.classes.lock() else {
            return Pushed::Full;
        };
        let kind = TransmitKind::of(bottle);
        let class = match kind {
            TransmitKind::Bulk => &mut c.bulk,
            TransmitKind::Control => &mut c.control,
        };
        if class.iter().any(|b| b[..] == *bottle) {
            c.duplicates += 1;
            return Pushed::Duplicate;
        }
        let pushed = if class.len() < BOUND {
            Pushed::Queued
        } else if kind == TransmitKind::Control {
            class.pop_front();
            Pushed::Full
        } else {
            c.dropped += 1;
            return Pushed::Full;
        };
        class.push_back(bottle.to_vec());
        if pushed == Pushed::Full {
            c.dropped += 1;
        }
        self.ready.notify_one();
        pushed
    }

    /// The next bottle for the line, control first, waiting at most `wait` for one.
    pub fn pop(&self, wait: Duration) -> Option<Vec<u8>> {
        let c = self.classes.lock().ok()?;
        let (mut c, _) = self
            .ready
            .wait_timeout_while(c, wait, |c| c.control.is_empty() && c.bulk.is_empty())
            .ok()?;
        c.control.pop_front().or_else(|| c.bulk.pop_front())
    }

    /// Bottles dropped so far because their class was full, and because they were
    /// already waiting.
    pub fn dropped(&self) -> (u64, u64) {
        self.classes
            .lock()
            .map_or((0, 0), |c| (c.dropped, c.duplicates))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcxses_core::wire::{Bottle, HelloAck, ObjectChunk};
    use pcxses_core::SessionId;

    fn encoded(b: Bottle<'_>) -> Vec<u8> {
        let mut bytes = Vec::new();
        b.encode_to_vec(&mut bytes, 1200).unwrap();
        bytes
    }

    #[test]
    fn acks_pass_object_code_and_a_full_class_drops_and_counts() {
        let session = SessionId(1);
        let chunk = |index| {
            encoded(Bottle::ObjectChunk(ObjectChunk {
                session,
                morph: 1,
                index,
                data: &[7; 64],
            }))
        };
        let ack = encoded(Bottle::HelloAck(HelloAck { session, seq: 9 }));
        let q = LineQueue::default();
        for i in 0..BOUND as u32 {
            assert_eq!(q.push(&chunk(i)), Pushed::Queued);
        }
        assert_eq!(q.push(&chunk(3)), Pushed::Duplicate);
        assert_eq!(q.push(&chunk(99)), Pushed::Full);
        assert_eq!(q.push(&ack), Pushed::Queued, "control has room of its own");
        assert_eq!(q.dropped(), (1, 1));
        assert_eq!(q.pop(Duration::ZERO), Some(ack));
        assert_eq!(q.pop(Duration::ZERO), Some(chunk(0)));
        // A full control class keeps the newest acks.
        let q = LineQueue::default();
        let ack = |seq| encoded(Bottle::HelloAck(HelloAck { session, seq }));
        for seq in 0..=BOUND as u16 {
            q.push(&ack(seq));
        }
        assert_eq!(q.dropped(), (1, 0));
        assert_eq!(q.pop(Duration::ZERO), Some(ack(1)), "the oldest went");
        let q = LineQueue::default();
        assert_eq!(q.pop(Duration::from_millis(1)), None);
    }
}
