//! Free ports on 127.0.0.1 for the programs and servers the tests start.

use std::net::{SocketAddr, TcpListener, UdpSocket};

/// `n` distinct addresses on 127.0.0.1 whose ports are free now for both TCP and UDP:
/// each is held until all are found, so that none is handed out twice.
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let mut held = Vec::with_capacity(n);
    while held.len() < n {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let addr = tcp.local_addr().expect("a bound port");
        if let Ok(udp) = UdpSocket::bind(addr) {
            held.push((addr, tcp, udp));
        }
    }
    held.into_iter().map(|(addr, _, _)| addr).collect()
}

/// One address of [`free_addrs`].
pub fn free_addr() -> SocketAddr {
    free_addrs(1)[0]
}
