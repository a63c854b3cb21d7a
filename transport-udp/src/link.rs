//! Source addresses as link ids, without a table for IPv4.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use pcxses_core::LinkId;

/// Tag of link ids that hold an IPv4 address and port directly.
const V4: u64 = 1 << 63;

/// Bits of an IPv6 link id that number its slot; the bits above (below the tag) count how
/// often the slot was reused, so that an id never names the next holder of its slot.
const SLOT_BITS: u32 = 32;

/// Maps datagram source addresses to link ids and back. An IPv4 address and port are
/// encoded in the id itself; IPv6 addresses get table slots, at most `v6_limit` of them.
///
/// A slot lasts only while it serves a device: the adapter releases a new slot at once
/// when the controller refused the datagram that made it ([`Links::release_unaccepted`],
/// after sending what the controller queued for it), and when the table is full, a new
/// address takes the slot of a never-accepted address, else of the address whose datagrams
/// the controller accepted least recently among a sample of slots (constant time, nothing
/// allocated per datagram). A device that lost its slot gets a new one with its next
/// datagram, and the core keys sessions by session id, so it keeps its session. No flood
/// of forged sources grows the table past its limit or keeps a device out.
#[derive(Debug)]
pub struct Links {
    by_addr: HashMap<SocketAddr, u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    v6_limit: usize,
    /// Where the search for a slot to reuse resumes.
    hand: usize,
    /// Counts accepted datagrams: the time of the slots' last acceptance.
    tick: u64,
}

/// Slots a full table compares to choose the one to reuse: the search stays constant-time.
const SAMPLE: usize = 32;

#[derive(Debug)]
struct Slot {
    addr: Option<SocketAddr>,
    /// Reuses of this slot; part of its link id.
    generation: u32,
    /// When the controller last accepted a datagram from this address (in `tick`s).
    last_accepted: Option<u64>,
}

impl Links {
    /// A map holding at most `v6_limit` IPv6 peers (at least one).
    pub fn new(v6_limit: usize) -> Links {
        Links {
            by_addr: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            v6_limit: v6_limit.clamp(1, u32::MAX as usize),
            hand: 0,
            tick: 0,
        }
    }

    /// The link id of a source address, taking a slot for a new IPv6 address (the slot of
    /// another address when the table is full).
    pub fn link(&mut self, addr: SocketAddr) -> LinkId {
        let IpAddr::V4(ip) = addr.ip() else {
            return self.v6_link(addr);
        };
        LinkId(V4 | u64::from(u32::from(ip)) << 16 | u64::from(addr.port()))
    }

    fn v6_link(&mut self, addr: SocketAddr) -> LinkId {
        if let Some(&i) = self.by_addr.get(&addr) {
            return self.id(i);
        }
        let i = match self.free.pop() {
            Some(i) => i,
            None if self.slots.len() < self.v6_limit => {
                self.slots.push(Slot {
                    addr: None,
                    generation: 0,
                    last_accepted: None,
                });
                (self.slots.len() - 1) as u32
            }
            None => self.reclaim(),
        };
        let slot = &mut self.slots[i as usize];
        slot.addr = Some(addr);
        slot.last_accepted = None;
        self.by_addr.insert(addr, i);
        self.id(i)
    }

    /// Frees the slot that has gone longest unaccepted among the next [`SAMPLE`] after the
    /// last one freed (a never-accepted one first) and returns it. Every slot is taken when
    /// this is called.
    fn reclaim(&mut self) -> u32 {
        let n = self.slots.len();
        let mut best = self.hand % n;
        for k in 0..SAMPLE.min(n) {
            let i = (self.hand + k) % n;
            let Some(at) = self.slots[i].last_accepted else {
                best = i;
                break;
            };
            if self.slots[best].last_accepted.is_some_and(|b| at < b) {
                best = i;
            }
        }
        self.hand = (best + 1) % n;
        self.vacate(best as u32);
        best as u32
    }

    /// Empties slot `i`: its address loses its id, and the id names no address any more.
    fn vacate(&mut self, i: u32) {
        let slot = &mut self.slots[i as usize];
        if let Some(addr) = slot.addr.take() {
            self.by_addr.remove(&addr);
        }
        slot.generation = slot.generation.wrapping_add(1) & ((1 << (63 - SLOT_BITS)) - 1);
    }

    fn id(&self, i: u32) -> LinkId {
        LinkId(u64::from(self.slots[i as usize].generation) << SLOT_BITS | u64::from(i))
    }

    /// The slot of `link`, if the link id is still that slot's.
    fn slot_of(&self, link: LinkId) -> Option<u32> {
        if link.0 & V4 != 0 {
            return None;
        }
        let i = (link.0 & ((1 << SLOT_BITS) - 1)) as u32;
        let slot = self.slots.get(i as usize)?;
        (slot.addr.is_some() && self.id(i) == link).then_some(i)
    }

    /// The controller accepted a datagram from `link`: its slot is in use.
    pub fn accepted(&mut self, link: LinkId) {
        if let Some(i) = self.slot_of(link) {
            self.tick += 1;
            self.slots[i as usize].last_accepted = Some(self.tick);
        }
    }

    /// Frees the slot of `link` unless the controller ever accepted a datagram from it.
    /// Call it for a link whose datagram was refused, once what the controller queued
    /// for that link was sent.
    pub fn release_unaccepted(&mut self, link: LinkId) {
        if let Some(i) = self.slot_of(link) {
            if self.slots[i as usize].last_accepted.is_none() {
                self.vacate(i);
                self.free.push(i);
            }
        }
    }

    /// IPv6 addresses holding a slot.
    pub fn v6_len(&self) -> usize {
        self.by_addr.len()
    }

    /// The address of a link id; `None` for an IPv6 id whose slot was released or reused.
    pub fn addr(&self, link: LinkId) -> Option<SocketAddr> {
        if link.0 & V4 != 0 {
            let ip = Ipv4Addr::from((link.0 >> 16) as u32);
            return Some(SocketAddr::new(IpAddr::V4(ip), link.0 as u16));
        }
        self.slots[self.slot_of(link)? as usize].addr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(port: u16) -> SocketAddr {
        SocketAddr::new("::1".parse().unwrap(), port)
    }

    #[test]
    fn addresses_round_trip() {
        let mut links = Links::new(1);
        for a in ["127.0.0.1:4700", "10.1.2.3:65535", "[::1]:9"] {
            let a: SocketAddr = a.parse().unwrap();
            let l = links.link(a);
            assert_eq!(links.addr(l), Some(a));
        }
    }

    #[test]
    fn a_refused_address_leaves_no_slot_and_its_id_names_no_one() {
        let mut links = Links::new(4);
        let junk = links.link(v6(1));
        links.release_unaccepted(junk);
        assert_eq!(links.v6_len(), 0);
        assert_eq!(links.addr(junk), None);
        // The next address reuses the slot under another id.
        let next = links.link(v6(2));
        assert_ne!(next, junk);
        assert_eq!(links.addr(junk), None);
        assert_eq!(links.addr(next), Some(v6(2)));
        // An accepted address keeps its slot.
        links.accepted(next);
        links.release_unaccepted(next);
        assert_eq!(links.addr(next), Some(v6(2)));
    }

    #[test]
    fn a_full_table_gives_a_new_address_the_least_recently_accepted_slot() {
        let mut links = Links::new(3);
        let ids: Vec<LinkId> = (1..=3).map(|p| links.link(v6(p))).collect();
        for &l in &ids {
            links.accepted(l);
        }
        // Port 1 keeps being accepted; 2 and 3 went quiet, 2 first.
        links.accepted(ids[0]);
        let new = links.link(v6(4));
        assert_eq!(links.addr(ids[1]), None);
        assert_eq!(links.addr(new), Some(v6(4)));
        // Junk then only ever takes the slot of junk.
        for round in 0..100u16 {
            links.accepted(ids[0]);
            links.accepted(new);
            let junk = links.link(v6(1_000 + round));
            assert_eq!(links.v6_len(), 3);
            assert_eq!(links.addr(junk), Some(v6(1_000 + round)));
        }
        assert_eq!(links.addr(ids[0]), Some(v6(1)));
        assert_eq!(links.addr(new), Some(v6(4)));
    }
}
