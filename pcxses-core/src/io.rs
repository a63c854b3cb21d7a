//! What goes into and comes out of a protocol machine.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::bottle::Bottle;
use crate::psk::{self, Direction, TRAILER_LEN};
use crate::time::Instant;

/// A transport's opaque name for one peer: a connection index, an address slot. The core
/// only hands it back in [`Transmit::to`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

/// An input to a protocol machine.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// Bytes of one bottle arrived (one datagram, or one frame from a stream).
    Receive {
        /// The time of arrival.
        now: Instant,
        /// The link it arrived on.
        from: LinkId,
        /// The bottle's bytes.
        bytes: &'a [u8],
        /// The peer's identity, if the transport authenticated it (a certificate's name).
        /// The machine refuses bottles that claim another identity.
        identity: Option<&'a str>,
    },
    /// Time passed: the deadline from the last [`Output::Timeout`] (or any later time).
    Timeout(Instant),
}

/// Bytes to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// The link to send them on.
    pub to: LinkId,
    /// One encoded bottle: one datagram, or the body of one frame.
    pub bytes: &'a [u8],
}

/// What a machine wants done next; drain with `poll_output` until [`Output::Timeout`].
#[derive(Debug)]
#[must_use = "drain poll_output until it returns Output::Timeout"]
pub enum Output<'a, E> {
    /// Send these bytes.
    Transmit(Transmit<'a>),
    /// Something happened that the application should know.
    Event(E),
    /// Nothing more to do now: call `handle_input(Input::Timeout(t))` at `t`, or earlier
    /// when bytes arrive. Always the last output of a drain.
    Timeout(Instant),
}

enum Pending<E> {
    Transmit {
        to: LinkId,
        start: usize,
        end: usize,
    },
    Event(E),
}

/// How to seal a bottle in pre-shared-key mode (see [`crate::psk`]).
pub(crate) struct Seal<'k> {
    pub key: &'k [u8; 32],
    pub dir: Direction,
    pub counter: u32,
    /// Bytes between the bottle and the trailer: a GOOD_MORNING's challenge.
    pub extra: &'k [u8],
}

impl<'k> Seal<'k> {
    /// The seal of the next bottle under `key`, counting on `sent`; `None` once the counter
    /// is used up (2^32 bottles in one session: the fence lease runs out and the device
    /// joins again).
    pub(crate) fn next(
        key: &'k [u8; 32],
        dir: Direction,
        sent: &mut u32,
        extra: &'k [u8],
    ) -> Option<Seal<'k>> {
        let next = sent.checked_add(1)?;
        let counter = core::mem::replace(sent, next);
        Some(Seal {
            key,
            dir,
            counter,
            extra,
        })
    }
}

/// The queue behind `poll_output`: transmits and events in the order they were produced.
/// Encoded bottles share one buffer that is reused once the queue drains, so steady-state
/// sending allocates nothing.
pub(crate) struct Outbox<E> {
    queue: VecDeque<Pending<E>>,
    bytes: Vec<u8>,
    limit: usize,
}

impl<E> Outbox<E> {
    /// An outbox holding at most `limit` pending outputs; transmits beyond it are dropped
    /// (the peer's retransmission recovers them), events are always kept.
    pub(crate) fn new(limit: usize) -> Self {
        Outbox {
            queue: VecDeque::new(),
            bytes: Vec::new(),
            limit,
        }
    }

    /// Encodes `bottle` for `to`, sealed with `seal` if given, refusing one longer than
    /// `max` bytes in all. Returns whether it was queued.
    pub(crate) fn send(
        &mut self,
        to: LinkId,
        bottle: &Bottle<'_>,
        max: usize,
        seal: Option<Seal<'_>>,
    ) -> bool {
        if self.queue.len() >= self.limit {
            return false;
        }
        let start = self.bytes.len();
        let room = match &seal {
            Some(s) => max.saturating_sub(TRAILER_LEN + s.extra.len()),
            None => max,
        };
        if bottle.encode_to_vec(&mut self.bytes, room).is_err() {
            return false;
        }
        if let Some(s) = seal {
            self.bytes.extend_from_slice(s.extra);
            psk::seal(&mut self.bytes, start, s.key, s.dir, s.counter);
        }
        self.queue.push_back(Pending::Transmit {
            to,
            start,
            end: self.bytes.len(),
        });
        true
    }

    pub(crate) fn event(&mut self, event: E) {
        self.queue.push_back(Pending::Event(event));
    }

    /// Drops every pending transmit; returns how many.
    pub(crate) fn drop_transmits(&mut self) -> usize {
        let before = self.queue.len();
        self.queue.retain(|p| matches!(p, Pending::Event(_)));
        before - self.queue.len()
    }

    pub(crate) fn poll(&mut self, next: Instant) -> Output<'_, E> {
        match self.queue.pop_front() {
            Some(Pending::Transmit { to, start, end }) => Output::Transmit(Transmit {
                to,
                bytes: &self.bytes[start..end],
            }),
            Some(Pending::Event(e)) => Output::Event(e),
            None => {
                self.bytes.clear();
                Output::Timeout(next)
            }
        }
    }
}
