//! The addresses of an area's ACs, as a device tries them.

use std::net::SocketAddr;

/// The addresses of an area's ACs, in the order a device tries them: the leader and its
/// standbys, of which one serves at a time. Never empty.
///
/// A device dials the first; when an attempt to connect fails, or the AC it reaches stops
/// answering ([`Device::ac_silent`](pcxses_core::Device::ac_silent)), it moves on to the
/// next, round the list, and carries its session there.
///
/// ```
/// use pcxses_driver::Acs;
///
/// let one: Acs = "127.0.0.1:4700".parse::<std::net::SocketAddr>()?.into();
/// assert_eq!(one.count(), 1);
/// let two = Acs::new(["10.0.0.1:4700".parse()?, "10.0.0.2:4700".parse()?]).expect("not empty");
/// assert_eq!(two.get(3), two.get(1));
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acs(Vec<SocketAddr>);

impl Acs {
    /// The ACs at `addrs`, in that order; `None` when there are none.
    pub fn new(addrs: impl IntoIterator<Item = SocketAddr>) -> Option<Acs> {
        let addrs: Vec<SocketAddr> = addrs.into_iter().collect();
        (!addrs.is_empty()).then_some(Acs(addrs))
    }

    /// The address at `index`, counted round the list.
    pub fn get(&self, index: usize) -> SocketAddr {
        self.0[index % self.0.len()]
    }

    /// How many there are: one at least.
    pub fn count(&self) -> usize {
        self.0.len()
    }

    /// The addresses, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = SocketAddr> + '_ {
        self.0.iter().copied()
    }
}

impl From<SocketAddr> for Acs {
    fn from(addr: SocketAddr) -> Acs {
        Acs(vec![addr])
    }
}
