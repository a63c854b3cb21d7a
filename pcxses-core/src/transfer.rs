//! Segmented transfer: state versions and MORPH streams split into numbered chunks, sent
//! with a window, acknowledged selectively and retransmitted on timeout (PROTOCOL.md §8).

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;
#[cfg(feature = "controller")]
use core::time::Duration;

#[cfg(feature = "controller")]
use crate::time::micros;
use crate::time::Instant;
use crate::wire::bottle::Progress;

/// Bytes a chunk-carrying bottle needs besides its data, at most (HELLO with a state
/// chunk, every varint at its longest): a session's chunk size leaves this much of the
/// bottle limit, on both sides.
pub(crate) const CHUNK_OVERHEAD: usize = 32;

/// Number of chunks of a transfer of `len` bytes; an empty transfer is one empty chunk.
pub(crate) fn chunk_count(len: u32, chunk: u16) -> u32 {
    let chunk = u32::from(chunk.max(1));
    len.div_ceil(chunk).max(1)
}

/// The byte range of chunk `index`, if the index exists.
pub(crate) fn chunk_range(len: u32, chunk: u16, index: u32) -> Option<Range<usize>> {
    if index >= chunk_count(len, chunk) {
        return None;
    }
    let chunk = u64::from(chunk.max(1));
    let start = u64::from(index) * chunk;
    let end = (start + chunk).min(u64::from(len));
    Some(start as usize..end as usize)
}

/// Which chunk indices are present, in 32-bit words: a 32-bit microcontroller shifts them
/// natively.
#[derive(Clone, Debug, Default)]
struct Bitmap(Vec<u32>);

impl Bitmap {
    fn new(bits: u32) -> Bitmap {
        Bitmap(vec![0; bits.div_ceil(32) as usize])
    }
    fn get(&self, i: u32) -> bool {
        self.0
            .get((i / 32) as usize)
            .is_some_and(|w| w & (1 << (i % 32)) != 0)
    }
    /// Sets bit `i`; returns whether it was clear.
    fn set(&mut self, i: u32) -> bool {
        match self.0.get_mut((i / 32) as usize) {
            Some(w) if *w & (1 << (i % 32)) == 0 => {
                *w |= 1 << (i % 32);
                true
            }
            _ => false,
        }
    }
}

/// Why a chunk was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChunkError {
    /// The index is past the last chunk.
    Index,
    /// The data length is not the chunk size (or the remainder, for the last chunk).
    Length,
}

/// Reassembles one transfer of known length.
#[derive(Debug)]
pub(crate) struct ChunkReceiver {
    /// The bytes, until they are taken once complete ([`ChunkReceiver::take_bytes`]).
    buf: Vec<u8>,
    len: u32,
    chunk: u16,
    count: u32,
    have: Bitmap,
    /// The first missing chunk.
    next: u32,
}

impl ChunkReceiver {
    /// A receiver for `len` bytes in chunks of `chunk`; allocates `len` bytes, which the
    /// caller has checked against its limit.
    pub(crate) fn new(len: u32, chunk: u16) -> ChunkReceiver {
        let count = chunk_count(len, chunk);
        ChunkReceiver {
            buf: vec![0; len as usize],
            len,
            chunk,
            count,
            have: Bitmap::new(count),
            next: 0,
        }
    }

    pub(crate) fn len(&self) -> u32 {
        self.len
    }

    /// Stores chunk `index`; `Ok(false)` for a duplicate.
    pub(crate) fn accept(&mut self, index: u32, data: &[u8]) -> Result<bool, ChunkError> {
        let range = chunk_range(self.len(), self.chunk, index).ok_or(ChunkError::Index)?;
        if range.len() != data.len() {
            return Err(ChunkError::Length);
        }
        if !self.have.set(index) {
            return Ok(false);
        }
        // Every chunk is set before the bytes can be taken: `buf` is whole here.
        let Some(to) = self.buf.get_mut(range) else {
            return Ok(false);
        };
        to.copy_from_slice(data);
        while self.next < self.count && self.have.get(self.next) {
            self.next += 1;
        }
        Ok(true)
    }

    pub(crate) fn progress(&self) -> Progress {
        let mut sack = 0u32;
        for b in 0..32 {
            if self.have.get(self.next + 1 + b) {
                sack |= 1 << b;
            }
        }
        Progress {
            next: self.next,
            sack,
        }
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.next == self.count
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The bytes received, taken out once complete: the receiver holds none after, and
    /// takes every chunk still arriving as the duplicate it is.
    pub(crate) fn take_bytes(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.buf)
    }
}

/// Retransmission settings of a sender.
#[cfg(feature = "controller")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pacing {
    pub(crate) window: u16,
    pub(crate) rto: Duration,
    pub(crate) rto_max: Duration,
}

/// Retransmission settings of a sender with its timeouts in whole microseconds, the unit
/// a [`ChunkSender`] computes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MicroPacing {
    pub(crate) window: u16,
    /// First retransmission timeout, µs.
    pub(crate) rto: u64,
    /// Largest retransmission timeout, µs.
    pub(crate) rto_max: u64,
}

#[cfg(feature = "controller")]
impl From<Pacing> for MicroPacing {
    fn from(p: Pacing) -> MicroPacing {
        MicroPacing {
            window: p.window,
            rto: micros(p.rto),
            rto_max: micros(p.rto_max),
        }
    }
}

/// `x · num / 2^shift`, rounded down, for `num < 2^shift`: exact and free of overflow for
/// every `x`, with shifts and multiplications by a small constant only.
const fn scaled(x: u64, num: u64, shift: u32) -> u64 {
    let mask = (1 << shift) - 1;
    (x >> shift) * num + (((x & mask) * num) >> shift)
}

/// Sends one transfer of known length: which chunk to send next, and when.
///
/// The retransmission timeout follows the path's round trip (RFC 6298): each
/// acknowledgement of chunks sent once gives a sample (Karn), smoothed into `srtt` and
/// `rttvar`, and the timeout is `srtt + 4 · rttvar`, never below the configured `rto` nor
/// above `rto_max`. On a slow or deeply queued link (a serial line behind a bridge) chunks
/// are then not sent again while the first copy still waits in a queue. Times are whole
/// microseconds, rounded down at every step.
#[derive(Debug)]
pub(crate) struct ChunkSender {
    len: u32,
    chunk: u16,
    count: u32,
    acked: Bitmap,
    /// Every chunk below this is acknowledged.
    acked_below: u32,
    next_new: u32,
    /// Chunks sent and not acknowledged: index, when last sent, and whether sent again.
    in_flight: Vec<(u32, Instant, bool)>,
    pacing: MicroPacing,
    /// The smoothed round trip and its variation, once sampled.
    srtt: Option<RttEstimate>,
    /// The current retransmission timeout, µs.
    rto: u64,
}

/// A path's smoothed round trip and its variation in microseconds, as a [`ChunkSender`]
/// measured them: the next transfer on the same path starts from them.
pub(crate) type RttEstimate = (u64, u64);

impl ChunkSender {
    /// A sender of `len` bytes in chunks of `chunk`, paced by `pacing`, that has measured
    /// nothing of the path yet.
    pub(crate) fn new(len: u32, chunk: u16, pacing: impl Into<MicroPacing>) -> ChunkSender {
        let pacing = pacing.into();
        let count = chunk_count(len, chunk);
        ChunkSender {
            len,
            chunk,
            count,
            acked: Bitmap::new(count),
            acked_below: 0,
            next_new: 0,
            in_flight: Vec::with_capacity(usize::from(pacing.window)),
            pacing,
            srtt: None,
            rto: pacing.rto,
        }
    }

    pub(crate) fn range(&self, index: u32) -> Range<usize> {
        chunk_range(self.len, self.chunk, index).unwrap_or(0..0)
    }

    pub(crate) fn is_done(&self) -> bool {
        self.acked_below == self.count
    }

    /// The number of chunks of the transfer.
    pub(crate) fn chunks(&self) -> u32 {
        self.count
    }

    /// The next chunk to put on the wire at `now`: a retransmission that is due, else a new
    /// chunk if the window has room. Marks it sent.
    pub(crate) fn next_to_send(&mut self, now: Instant) -> Option<u32> {
        let rto = self.rto;
        if let Some(slot) = self
            .in_flight
            .iter_mut()
            .find(|(_, at, _)| at.plus_micros(rto) <= now)
        {
            (slot.1, slot.2) = (now, true);
            self.rto = rto.saturating_add(rto).min(self.pacing.rto_max);
            return Some(slot.0);
        }
        if self.next_new < self.count && self.in_flight.len() < usize::from(self.pacing.window) {
            let index = self.next_new;
            self.next_new += 1;
            self.in_flight.push((index, now, false));
            return Some(index);
        }
        None
    }

    /// This sender, starting from what an earlier transfer on the same path measured.
    pub(crate) fn with_estimate(mut self, estimate: Option<RttEstimate>) -> ChunkSender {
        self.srtt = estimate;
        self.rto = self.base_rto();
        self
    }

    /// What this sender measured of the path, if it took a sample.
    pub(crate) fn estimate(&self) -> Option<RttEstimate> {
        self.srtt
    }

    /// The timeout the round trips seen so far call for: `srtt + 4 · rttvar`, the variation
    /// counting at least half the configured timeout (a steady round trip must not leave
    /// the timeout at the round trip itself), within `[rto, rto_max]`.
    fn base_rto(&self) -> u64 {
        let floor = self.pacing.rto / 2;
        let rtt = (self.srtt).map_or(0, |(srtt, var)| {
            srtt.saturating_add(var.saturating_mul(4).max(floor))
        });
        rtt.max(self.pacing.rto).min(self.pacing.rto_max)
    }

    /// Folds one round trip, µs, into the smoothed estimate: `srtt · 7/8 + rtt / 8` and
    /// `rttvar · 3/4 + |srtt − rtt| / 4`.
    fn sample(&mut self, rtt: u64) {
        self.srtt = Some(match self.srtt {
            None => (rtt, rtt / 2),
            Some((srtt, var)) => (
                scaled(srtt, 7, 3) + rtt / 8,
                scaled(var, 3, 2) + srtt.abs_diff(rtt) / 4,
            ),
        });
    }

    /// Applies the receiver's progress, received at `now`; returns whether anything new
    /// was acknowledged. Progress naming chunks past the end is clamped.
    pub(crate) fn on_progress(&mut self, p: Progress, now: Instant) -> bool {
        let mut advanced = false;
        let below = p.next.min(self.count);
        while self.acked_below < below {
            advanced |= self.acked.set(self.acked_below);
            self.acked_below += 1;
        }
        for b in 0..32u32 {
            if p.sack & (1 << b) != 0 {
                let i = p.next.saturating_add(1 + b);
                if i < self.count {
                    advanced |= self.acked.set(i);
                }
            }
        }
        while self.acked_below < self.count && self.acked.get(self.acked_below) {
            self.acked_below += 1;
        }
        let acked = &self.acked;
        // The latest chunk acknowledged that was sent once times the round trip.
        let sent_once = (self.in_flight.iter())
            .filter(|(i, _, again)| !again && acked.get(*i))
            .map(|(_, at, _)| *at)
            .max();
        self.in_flight.retain(|(i, ..)| !acked.get(*i));
        // Karn: a backed-off timeout stands until a chunk sent once times the path again.
        if let Some(at) = sent_once {
            self.sample(now.micros_since(at));
            self.rto = self.base_rto();
        }
        advanced
    }

    /// When the oldest chunk in flight is due for retransmission.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let rto = self.rto;
        self.in_flight
            .iter()
            .map(|(_, at, _)| at.plus_micros(rto))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use core::time::Duration;

    use super::*;

    const PACING: MicroPacing = MicroPacing {
        window: 4,
        rto: 100_000,
        rto_max: 800_000,
    };

    #[test]
    fn scaling_rounds_down_without_overflow() {
        for x in [
            0,
            1,
            7,
            8,
            9,
            1_000_003,
            u64::MAX / 8,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let exact = |num: u128, den: u128| (u128::from(x) * num / den) as u64;
            assert_eq!(scaled(x, 7, 3), exact(7, 8), "{x}");
            assert_eq!(scaled(x, 3, 2), exact(3, 4), "{x}");
        }
    }

    #[test]
    fn chunk_math_covers_every_byte_once() {
        assert_eq!(chunk_count(0, 10), 1);
        assert_eq!(chunk_range(0, 10, 0), Some(0..0));
        assert_eq!(chunk_count(25, 10), 3);
        assert_eq!(chunk_range(25, 10, 2), Some(20..25));
        assert_eq!(chunk_range(25, 10, 3), None);
        assert_eq!(chunk_count(u32::MAX, 1), u32::MAX);
    }

    #[test]
    fn chunks_after_the_bytes_are_taken_are_duplicates() {
        let mut rx = ChunkReceiver::new(100, 64);
        assert_eq!(rx.accept(0, &[1; 64]), Ok(true));
        assert_eq!(rx.accept(1, &[2; 36]), Ok(true));
        assert!(rx.is_complete());
        let bytes = rx.take_bytes();
        assert_eq!((bytes.len(), bytes[0], bytes[99]), (100, 1, 2));
        assert_eq!(rx.accept(1, &[2; 36]), Ok(false));
        assert_eq!(rx.accept(2, &[2; 1]), Err(ChunkError::Index));
        assert_eq!(rx.len(), 100);
    }

    #[test]
    fn a_lossy_transfer_completes_through_retransmission() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut tx = ChunkSender::new(1000, 64, PACING);
        let mut rx = ChunkReceiver::new(1000, 64);
        let mut now = Instant::from_millis(0);
        let mut sent = 0u32;
        while !tx.is_done() {
            while let Some(i) = tx.next_to_send(now) {
                sent += 1;
                // Drop every third transmission.
                if !sent.is_multiple_of(3) {
                    rx.accept(i, &data[tx.range(i)]).unwrap();
                }
            }
            tx.on_progress(rx.progress(), now);
            now = tx.deadline().unwrap_or(now).max(now);
            assert!(sent < 200, "no progress");
        }
        assert!(rx.is_complete());
        assert_eq!(rx.bytes(), &data[..]);
    }

    #[test]
    fn the_timeout_follows_a_slow_round_trip_and_no_chunk_goes_twice() {
        // A path whose acks take 700 ms, seven times the configured first timeout: after
        // the first retransmissions the timeout follows the round trip.
        let mut tx = ChunkSender::new(64 * 40, 64, PACING);
        let (mut now, mut sent) = (Instant::from_millis(0), Vec::new());
        let mut arrivals: Vec<(Instant, u32)> = Vec::new();
        let mut rx = ChunkReceiver::new(64 * 40, 64);
        while !tx.is_done() {
            while let Some(i) = tx.next_to_send(now) {
                sent.push((now, i));
                arrivals.push((now + Duration::from_millis(700), i));
            }
            let next = arrivals.iter().map(|(at, _)| *at).min();
            now = next.into_iter().chain(tx.deadline()).min().unwrap();
            let (due, later): (Vec<_>, Vec<_>) =
                arrivals.into_iter().partition(|(at, _)| *at <= now);
            arrivals = later;
            for (_, i) in due {
                let _ = rx.accept(i, &[0; 64]);
            }
            tx.on_progress(rx.progress(), now);
        }
        let late = sent
            .iter()
            .filter(|(at, _)| *at >= Instant::from_millis(3_000));
        assert_eq!(
            late.clone().count(),
            late.map(|(_, i)| i)
                .collect::<alloc::collections::BTreeSet<_>>()
                .len()
        );
        assert!(tx.rto >= 700_000, "{:?}", tx.rto);
    }

    #[test]
    fn a_new_transfer_starts_from_the_estimate_of_the_last() {
        let slow = Some((600_000, 50_000));
        let tx = ChunkSender::new(64, 64, PACING).with_estimate(slow);
        assert_eq!(tx.rto, 800_000, "600 + 4 · 50, capped at rto_max");
        let steady = Some((300_000, 0));
        let tx = ChunkSender::new(64, 64, PACING).with_estimate(steady);
        assert_eq!(tx.rto, 350_000, "the variation counts rto / 2 at least");
        assert_eq!(ChunkSender::new(64, 64, PACING).rto, PACING.rto);
    }

    #[test]
    fn bad_chunks_are_refused_without_effect() {
        let mut rx = ChunkReceiver::new(100, 64);
        assert_eq!(rx.accept(2, &[0; 4]), Err(ChunkError::Index));
        assert_eq!(rx.accept(0, &[0; 63]), Err(ChunkError::Length));
        assert_eq!(rx.accept(1, &[0; 64]), Err(ChunkError::Length));
        assert_eq!(rx.progress(), Progress { next: 0, sack: 0 });
        assert_eq!(rx.accept(1, &[7; 36]), Ok(true));
        assert_eq!(rx.accept(1, &[7; 36]), Ok(false));
        assert_eq!(rx.progress(), Progress { next: 0, sack: 1 });
    }

    #[test]
    fn progress_past_the_end_is_clamped() {
        let mut tx = ChunkSender::new(100, 64, PACING);
        let progress = Progress {
            next: u32::MAX,
            sack: u32::MAX,
        };
        assert!(tx.on_progress(progress, Instant::from_millis(0)));
        assert!(tx.is_done());
    }
}
