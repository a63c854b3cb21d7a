//! Source addresses as link ids, without a table for IPv4.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use pcxses_core::LinkId;

/// Tag of link ids that hold an IPv4 address and port directly.
const V4: u64 = 1 << 63;

/// Maps datagram source addresses to link ids and back. An IPv4 address and port are
/// encoded in the id itself; IPv6 addresses get table slots, at most `v6_limit` of them,
/// so a flood of forged sources cannot grow it without bound.
#[derive(Debug)]
pub struct Links {
    v6: HashMap<SocketAddr, LinkId>,
    v6_addrs: Vec<SocketAddr>,
    v6_limit: usize,
}

impl Links {
    /// A map holding at most `v6_limit` IPv6 peers.
    pub fn new(v6_limit: usize) -> Links {
        Links {
            v6: HashMap::new(),
            v6_addrs: Vec::new(),
            v6_limit,
        }
    }

    /// The link id of a source address; `None` when the IPv6 table is full.
    pub fn link(&mut self, addr: SocketAddr) -> Option<LinkId> {
        match addr.ip() {
            IpAddr::V4(ip) => Some(LinkId(
                V4 | u64::from(u32::from(ip)) << 16 | u64::from(addr.port()),
            )),
            IpAddr::V6(_) => {
                if let Some(&l) = self.v6.get(&addr) {
                    return Some(l);
                }
                if self.v6_addrs.len() >= self.v6_limit {
                    return None;
                }
                let l = LinkId(self.v6_addrs.len() as u64);
                self.v6_addrs.push(addr);
                self.v6.insert(addr, l);
                Some(l)
            }
        }
    }

    /// The address of a link id.
    pub fn addr(&self, link: LinkId) -> Option<SocketAddr> {
        if link.0 & V4 != 0 {
            let ip = Ipv4Addr::from((link.0 >> 16) as u32);
            return Some(SocketAddr::new(IpAddr::V4(ip), link.0 as u16));
        }
        self.v6_addrs.get(link.0 as usize).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_and_v6_is_bounded() {
        let mut links = Links::new(1);
        for a in ["127.0.0.1:4700", "10.1.2.3:65535", "[::1]:9"] {
            let a: SocketAddr = a.parse().unwrap();
            let l = links.link(a).unwrap();
            assert_eq!(links.addr(l), Some(a));
        }
        assert_eq!(links.link("[::2]:9".parse().unwrap()), None);
    }
}
