//! The simulated network: a priority queue of packets and the faults applied to them.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use pcxses_core::wire::{Bottle, ObjectChunk};
use pcxses_core::{Instant, Limits, LinkId, MAX_BOTTLE_LEN};

/// A small deterministic PRNG (SplitMix64) for the simulation's own choices.
#[derive(Clone, Debug)]
pub struct SimRng(u64);

impl SimRng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> SimRng {
        SimRng(seed ^ 0x5eed_5eed_5eed_5eed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A uniform value in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }
}

/// How the network misbehaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Faults {
    /// Probability that a packet is lost.
    pub loss: f64,
    /// Probability that a packet is delivered twice.
    pub dup: f64,
    /// Shortest one-way delay, microseconds.
    pub delay_min_us: u64,
    /// Longest one-way delay, microseconds; packets with different delays reorder.
    pub delay_max_us: u64,
    /// Probability that an OBJECT_CHUNK's data has one byte changed in flight.
    pub tamper: f64,
}

impl Faults {
    /// A perfect network with 100–500 µs of delay.
    pub const CLEAN: Faults = Faults {
        loss: 0.0,
        dup: 0.0,
        delay_min_us: 100,
        delay_max_us: 500,
        tamper: 0.0,
    };
}

/// One packet in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Delivery time.
    pub at: Instant,
    /// Tie-breaker: sending order.
    pub seq: u64,
    /// Sender.
    pub from: LinkId,
    /// Receiver.
    pub to: LinkId,
    /// One encoded bottle.
    pub bytes: Vec<u8>,
}

impl Ord for Packet {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

impl PartialOrd for Packet {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Packets in flight, earliest first.
#[derive(Debug, Default)]
pub struct Net {
    queue: BinaryHeap<Packet>,
    seq: u64,
    /// Packets sent, including those then lost.
    pub sent: u64,
    /// Packets lost.
    pub lost: u64,
    /// Object chunks tampered with.
    pub tampered: u64,
}

impl Net {
    /// Sends `bytes` through the faults.
    pub fn send(
        &mut self,
        rng: &mut SimRng,
        faults: &Faults,
        now: Instant,
        from: LinkId,
        to: LinkId,
        bytes: &[u8],
    ) {
        self.sent += 1;
        if rng.chance(faults.loss) {
            self.lost += 1;
            return;
        }
        let mut bytes = bytes.to_vec();
        if rng.chance(faults.tamper) && tamper(&mut bytes, rng) {
            self.tampered += 1;
        }
        let copies = if rng.chance(faults.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = rng.range(faults.delay_min_us, faults.delay_max_us);
            self.seq += 1;
            self.queue.push(Packet {
                at: Instant::from_micros(now.as_micros() + delay),
                seq: self.seq,
                from,
                to,
                bytes: bytes.clone(),
            });
        }
    }

    /// When the next packet arrives.
    pub fn next_at(&self) -> Option<Instant> {
        self.queue.peek().map(|p| p.at)
    }

    /// The next packet due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Packet> {
        if self.queue.peek().is_some_and(|p| p.at <= now) {
            self.queue.pop()
        } else {
            None
        }
    }
}

/// Changes one data byte of an OBJECT_CHUNK; other bottles are left alone.
fn tamper(bytes: &mut Vec<u8>, rng: &mut SimRng) -> bool {
    let limits = Limits::datagram(MAX_BOTTLE_LEN);
    let Ok(Bottle::ObjectChunk(c)) = Bottle::decode(bytes, &limits) else {
        return false;
    };
    if c.data.is_empty() {
        return false;
    }
    let mut data = c.data.to_vec();
    let i = rng.range(0, data.len() as u64 - 1) as usize;
    data[i] ^= 0x01;
    let forged = Bottle::ObjectChunk(ObjectChunk { data: &data, ..c });
    let mut out = Vec::new();
    forged
        .encode_to_vec(&mut out, MAX_BOTTLE_LEN)
        .expect("same size as the original");
    *bytes = out;
    true
}
