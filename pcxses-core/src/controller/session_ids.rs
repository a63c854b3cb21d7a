//! Session ids that name their device without a lookup table.
//!
//! A session id is a keyed permutation (a four-round Feistel network on 32 bits) of the
//! device's index and a per-device generation counter. The AC recovers the device index by
//! inverting the permutation, then compares the whole id with the device's current and
//! retired sessions: finding a session is O(1) and touches one registry entry. Without the
//! key the ids look random, and a new incarnation of a device gets a different id.

use crate::ids::SessionId;
use crate::rng::Rng;

/// Bits of the device index: at most 2^20 registered devices.
pub(crate) const DEVICE_BITS: u32 = 20;
/// Most devices a controller can register.
pub(crate) const MAX_DEVICES: usize = 1 << DEVICE_BITS;
/// Generations per device before ids repeat: a stale bottle would have to outlive this
/// many re-joins of its device to be mistaken for a current one.
const GENERATIONS: u32 = 1 << (32 - DEVICE_BITS);

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SessionIds {
    keys: [u32; 4],
}

fn round(half: u16, key: u32) -> u16 {
    ((u32::from(half) ^ key).wrapping_mul(0x9e37_79b1) >> 16) as u16
}

impl SessionIds {
    pub(crate) fn new(rng: &mut Rng) -> SessionIds {
        SessionIds {
            keys: [
                rng.next_u32(),
                rng.next_u32(),
                rng.next_u32(),
                rng.next_u32(),
            ],
        }
    }

    pub(crate) fn from_keys(keys: [u32; 4]) -> SessionIds {
        SessionIds { keys }
    }

    pub(crate) fn keys(&self) -> [u32; 4] {
        self.keys
    }

    /// The id of `device`'s session number `generation`; `None` for the one pair whose
    /// id would be [`SessionId::NONE`].
    pub(crate) fn make(&self, device: u32, generation: u32) -> Option<SessionId> {
        let plain = (generation % GENERATIONS) << DEVICE_BITS | (device & (MAX_DEVICES as u32 - 1));
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
        (u32::from(l) << 16 | u32::from(r)) & (MAX_DEVICES as u32 - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_differ_per_generation() {
        let ids = SessionIds::new(&mut Rng::new(3));
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
        let a = SessionIds::new(&mut Rng::new(1));
        let b = SessionIds::new(&mut Rng::new(2));
        let same = (0..1000).filter(|&d| a.make(d, 0) == b.make(d, 0)).count();
        assert!(same < 5);
    }
}
