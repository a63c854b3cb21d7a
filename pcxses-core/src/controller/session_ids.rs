//! Session ids that name their device without a lookup table.
//!
//! A session id is a keyed permutation (a four-round Feistel network on 32 bits) of the
//! device's index and a per-device generation counter. The AC recovers the device index by
//! inverting the permutation, then compares the whole id with the device's current and
//! retired sessions: finding a session is O(1) and touches one registry entry. A new
//! incarnation of a device gets a different id. The ids are not secret from anyone who sees
//! the traffic and are only 32 bits: they name a session, they do not authenticate it.
//!
//! The device index takes as many bits as the registry needs (`⌈log2 n⌉`, at least one),
//! the generation the rest: a device's ids repeat only after `2^(32 − ⌈log2 n⌉)` of its
//! sessions (2^31 for two devices, 4,096 for 2^20).

use crate::rng::Rng;
use crate::wire::ids::SessionId;

/// Most bits of the device index: at most 2^20 registered devices.
const MAX_DEVICE_BITS: u32 = 20;
/// Most devices a controller can register.
pub(crate) const MAX_DEVICES: usize = 1 << MAX_DEVICE_BITS;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SessionIds {
    keys: [u32; 4],
    /// Bits of the device index.
    device_bits: u32,
}

fn round(half: u16, key: u32) -> u16 {
    ((u32::from(half) ^ key).wrapping_mul(0x9e37_79b1) >> 16) as u16
}

/// Bits needed to number `devices` devices: `⌈log2 devices⌉`, at least one.
fn bits_for(devices: usize) -> u32 {
    let n = devices.clamp(2, MAX_DEVICES) as u32;
    u32::BITS - (n - 1).leading_zeros()
}

impl SessionIds {
    /// Ids for a registry of `devices` devices, under keys drawn from `rng`.
    pub(crate) fn new(rng: &mut Rng, devices: usize) -> SessionIds {
        SessionIds {
            keys: [
                rng.next_u32(),
                rng.next_u32(),
                rng.next_u32(),
                rng.next_u32(),
            ],
            device_bits: bits_for(devices),
        }
    }

    /// The same registry size under other keys (a restored AC's).
    pub(crate) fn with_keys(&self, keys: [u32; 4]) -> SessionIds {
        SessionIds {
            keys,
            device_bits: self.device_bits,
        }
    }

    pub(crate) fn keys(&self) -> [u32; 4] {
        self.keys
    }

    /// Sessions of one device before its ids repeat.
    pub(crate) fn generations(&self) -> u64 {
        1 << (32 - self.device_bits)
    }

    fn device_mask(&self) -> u32 {
        (1u32 << self.device_bits) - 1
    }

    /// The id of `device`'s session number `generation`; `None` for the one pair whose
    /// id would be [`SessionId::NONE`].
    pub(crate) fn make(&self, device: u32, generation: u32) -> Option<SessionId> {
        let generation = (u64::from(generation) % self.generations()) as u32;
        let plain = generation << self.device_bits | (device & self.device_mask());
        let (mut l, mut r) = ((plain >> 16) as u16, plain as u16);
        for &k in &self.keys {
            (l, r) = (r, l ^ round(r, k));
        }
        let id = u32::from(l) << 16 | u32::from(r);
        (id != 0).then_some(SessionId(id))
    }

    /// The device index an id names (which may not be registered).
    pub(crate) fn device_of(&self, id: SessionId) -> u32 {
        let (mut l, mut r) = ((id.0 >> 16) as u16, id.0 as u16);
        for &k in self.keys.iter().rev() {
            (l, r) = (r ^ round(l, k), l);
        }
        (u32::from(l) << 16 | u32::from(r)) & self.device_mask()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_differ_per_generation() {
        let ids = SessionIds::new(&mut Rng::new(3), MAX_DEVICES);
        let mut seen = alloc::collections::BTreeSet::new();
        for device in [0, 1, 77, MAX_DEVICES as u32 - 1] {
            for generation in 0..50 {
                if let Some(id) = ids.make(device, generation) {
                    assert_eq!(ids.device_of(id), device);
                    assert!(seen.insert(id), "id repeated");
                }
            }
        }
    }

    #[test]
    fn another_key_gives_other_ids() {
        let a = SessionIds::new(&mut Rng::new(1), 1000);
        let b = SessionIds::new(&mut Rng::new(2), 1000);
        let same = (0..1000).filter(|&d| a.make(d, 0) == b.make(d, 0)).count();
        assert!(same < 5);
    }

    #[test]
    fn the_device_index_takes_only_the_bits_the_registry_needs() {
        assert_eq!(
            [1, 2, 3, 4, 5, 1024, 1025].map(bits_for),
            [1, 1, 2, 2, 3, 10, 11]
        );
        assert_eq!(bits_for(MAX_DEVICES), MAX_DEVICE_BITS);
        let ids = SessionIds::new(&mut Rng::new(5), 3);
        assert_eq!(ids.generations(), 1 << 30);
        for device in 0..3 {
            let id = ids.make(device, 123_456).unwrap();
            assert_eq!(ids.device_of(id), device);
        }
    }

    #[test]
    fn a_device_with_a_small_registry_never_repeats_a_session_id_in_a_million_joins() {
        let ids = SessionIds::new(&mut Rng::new(9), 2);
        let mut seen = alloc::collections::BTreeSet::new();
        for generation in 0..1_000_000 {
            if let Some(id) = ids.make(1, generation) {
                assert!(seen.insert(id), "generation {generation} repeats an id");
            }
        }
    }
}
