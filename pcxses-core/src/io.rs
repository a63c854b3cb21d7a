//! What goes into and comes out of a protocol machine.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

#[cfg(feature = "psk")]
pub(crate) use crate::psk::Seal;
use crate::stats::Stats;
use crate::time::Instant;
use crate::wire::bottle::Bottle;

/// A transport's opaque name for one peer: a connection index, an address slot. The core
/// only hands it back in [`Transmit::to`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

/// Which kind of traffic a [`Transmit`] is, for transports that can keep the two apart
/// (separate streams, priorities): nothing else depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransmitKind {
    /// A protocol exchange that must not wait behind bulk data: joins, HELLOs and their
    /// acknowledgements, MORPH headers, answers.
    Control,
    /// The object code of a MORPH (OBJECT_CHUNK): large, and fine to queue.
    Bulk,
}

impl TransmitKind {
    /// The kind of traffic the encoded bottle `bottle` is, read from its first two bytes
    /// without decoding it, sealed or not: for what relays bottles between links of
    /// different speeds (a serial bridge) and lets control traffic pass object code.
    ///
    /// ```
    /// use pcxses_core::wire::{Bottle, HelloAck, ObjectChunk};
    /// use pcxses_core::{SessionId, TransmitKind};
    ///
    /// let kind = |b: Bottle<'_>| {
    ///     let mut bytes = Vec::new();
    ///     b.encode_to_vec(&mut bytes, 1200).unwrap();
    ///     TransmitKind::of(&bytes)
    /// };
    /// let session = SessionId(7);
    /// assert_eq!(kind(Bottle::HelloAck(HelloAck { session, seq: 1 })), TransmitKind::Control);
    /// let chunk = ObjectChunk { session, morph: 1, index: 0, data: &[0; 100] };
    /// assert_eq!(kind(Bottle::ObjectChunk(chunk)), TransmitKind::Bulk);
    /// ```
    pub fn of(bottle: &[u8]) -> TransmitKind {
        if bottle.get(1) == Some(&crate::wire::bottle::OBJECT_CHUNK_TAG) {
            TransmitKind::Bulk
        } else {
            TransmitKind::Control
        }
    }
}

/// Bytes to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// The link to send them on. A device sends everything to its AC, on `LinkId(0)`.
    pub to: LinkId,
    /// Control or bulk data.
    pub kind: TransmitKind,
    /// One encoded bottle: one datagram, or the body of one frame.
    pub bytes: &'a [u8],
}

/// What a machine wants done next; drain with [`Machine::poll_output`] until
/// [`Output::Timeout`].
#[derive(Debug)]
#[must_use = "drain poll_output until it returns Output::Timeout"]
pub enum Output<'a, E> {
    /// Send these bytes.
    Transmit(Transmit<'a>),
    /// Something happened that the application should know.
    Event(E),
    /// Nothing more to do now: call [`Machine::handle_timeout`] at this time, or earlier
    /// when bytes arrive ([`Instant::MAX`]: no timer needed). Always the last output of a
    /// drain.
    Timeout(Instant),
}

/// What a driver needs of a protocol machine, whichever it is ([`crate::Controller`] or
/// [`crate::Device`]): the passing of time and the drain of its outputs. Bytes that
/// arrive go to the machine's own `handle_receive`, since an AC serves many links and a
/// device one.
///
/// ```
/// use pcxses_core::{Instant, Machine, Output};
///
/// /// Drains `machine`, handing each transmit to `send`; returns when to call
/// /// `handle_timeout` next.
/// fn drain<M: Machine>(machine: &mut M, mut send: impl FnMut(&[u8])) -> Instant {
///     loop {
///         match machine.poll_output() {
///             Output::Transmit(t) => send(t.bytes),
///             Output::Event(_) => {}
///             Output::Timeout(at) => return at,
///         }
///     }
/// }
/// ```
///
#[cfg_attr(
    not(feature = "controller"),
    doc = "[`crate::Controller`]: crate#cargo-features"
)]
pub trait Machine {
    /// What the machine reports to the application.
    type Event;

    /// Time passed: runs the timers due at `now` (any time at or after the last
    /// [`Output::Timeout`]; earlier is harmless). Time cannot be refused.
    fn handle_timeout(&mut self, now: Instant);

    /// The next output. Drain until [`Output::Timeout`], which always ends a drain.
    fn poll_output(&mut self) -> Output<'_, Self::Event>;

    /// Counters of received and refused bottles.
    fn stats(&self) -> &Stats;
}

/// How to seal a bottle on its way out, which this build without pre-shared-key mode
/// never does: no value of this type exists.
#[cfg(not(feature = "psk"))]
pub(crate) struct Seal<'k>(core::convert::Infallible, core::marker::PhantomData<&'k ()>);

#[cfg(not(feature = "psk"))]
impl Seal<'_> {
    fn overhead(&self) -> usize {
        match self.0 {}
    }

    fn take_counter(&mut self) -> Option<u32> {
        match self.0 {}
    }

    fn apply(&self, _: &mut Vec<u8>, _: usize, _: u32) {
        match self.0 {}
    }
}

enum Pending<E> {
    Transmit {
        to: LinkId,
        kind: TransmitKind,
        start: usize,
        end: usize,
    },
    Event(E),
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

    /// Queues `bottle` for `to`, refusing one longer than `max` bytes in all, sealed with
    /// `seal` in pre-shared-key mode. A bottle that does not go (the queue is full, the
    /// bottle too long, the seal's counter used up) is counted in `stats`: the peer's
    /// retransmission recovers it.
    pub(crate) fn transmit(
        &mut self,
        stats: &mut Stats,
        to: LinkId,
        bottle: &Bottle<'_>,
        max: usize,
        seal: Option<Seal<'_>>,
    ) {
        if !self.push(to, bottle, max, seal) {
            stats.dropped_transmits += 1;
        }
    }

    /// Encodes and seals `bottle` for `to`; returns whether it was queued.
    fn push(
        &mut self,
        to: LinkId,
        bottle: &Bottle<'_>,
        max: usize,
        seal: Option<Seal<'_>>,
    ) -> bool {
        let seal = match seal {
            Some(mut s) => match s.take_counter() {
                Some(counter) => Some((s, counter)),
                None => return false,
            },
            None => None,
        };
        if self.queue.len() >= self.limit {
            return false;
        }
        let start = self.bytes.len();
        let room = match &seal {
            Some((s, _)) => max.saturating_sub(s.overhead()),
            None => max,
        };
        if bottle.encode_to_vec(&mut self.bytes, room).is_err() {
            return false;
        }
        if let Some((s, counter)) = seal {
            s.apply(&mut self.bytes, start, counter);
        }
        let kind = match bottle {
            Bottle::ObjectChunk(_) => TransmitKind::Bulk,
            _ => TransmitKind::Control,
        };
        self.queue.push_back(Pending::Transmit {
            to,
            kind,
            start,
            end: self.bytes.len(),
        });
        true
    }

    pub(crate) fn event(&mut self, event: E) {
        self.queue.push_back(Pending::Event(event));
    }

    /// Whether a transmit is pending.
    #[cfg(feature = "controller")]
    pub(crate) fn has_transmits(&self) -> bool {
        self.queue
            .iter()
            .any(|p| matches!(p, Pending::Transmit { .. }))
    }

    /// Drops every pending transmit and event; returns how many transmits.
    #[cfg(feature = "controller")]
    pub(crate) fn drop_pending(&mut self) -> usize {
        let transmits = self.queue.iter();
        let transmits = transmits
            .filter(|p| !matches!(p, Pending::Event(_)))
            .count();
        self.queue.clear();
        transmits
    }

    pub(crate) fn poll(&mut self, next: Instant) -> Output<'_, E> {
        match self.queue.pop_front() {
            Some(Pending::Transmit {
                to,
                kind,
                start,
                end,
            }) => Output::Transmit(Transmit {
                to,
                kind,
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
