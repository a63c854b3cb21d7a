//! An attacker for testing one's own AC on loopback, as a library and a program.
//!
//! The library holds the attacks: it holds connections ([`hold`]), floods junk from many
//! source ports ([`junk`]), injects forged bottles for made-up sessions ([`forge`]) and
//! sends back recorded bottles ([`recording`]), each bounded in count and time; [`run`]
//! runs those asked for at once. It sends only to loopback addresses.
//!
//! The `pcxses-attack` binary runs the attacks its command line asks for and prints what
//! it sent as one JSON line.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

pub mod forge;
pub mod hold;
pub mod inject;
pub mod junk;
pub mod recording;
pub mod run;

/// Why an attack could not run.
#[derive(Debug, thiserror::Error)]
pub enum AttackError {
    /// The tool sends only to 127.0.0.0/8 and ::1.
    #[error("{0} is not a loopback address: the tool attacks only an AC on this host")]
    NotLoopback(SocketAddr),
    /// A socket could not be opened.
    #[error("socket: {0}")]
    Io(#[from] io::Error),
    /// A recording file could not be read.
    #[error("recording {path}: {reason}")]
    Recording {
        /// The file.
        path: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The TLS files of a QUIC hold could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
}

/// Refuses any address that is not on this host's loopback interface.
pub fn loopback(addr: SocketAddr) -> Result<SocketAddr, AttackError> {
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(AttackError::NotLoopback(addr))
    }
}

/// The xorshift64 step every generator of the tool draws from: reproducible, not secret.
pub fn next(rng: &mut u64) -> u64 {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    *rng
}

/// Spreads `count` items evenly over the time until a deadline.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    start: Instant,
    deadline: Instant,
    count: usize,
}

impl Pace {
    /// `count` items evenly from now until `deadline`.
    pub fn new(count: usize, deadline: Instant) -> Pace {
        Pace {
            start: Instant::now(),
            deadline,
            count,
        }
    }

    /// Waits until item `i` is due; `false` once the deadline passed (stop sending).
    pub fn wait(&self, i: usize) -> bool {
        // Due a little before the end, so that the last items go out in time.
        let span = self.deadline.saturating_duration_since(self.start);
        let due = self.start + span.mul_f64(0.9 * i as f64 / self.count.max(1) as f64);
        loop {
            let now = Instant::now();
            if now >= self.deadline {
                return false;
            }
            if now >= due {
                return true;
            }
            std::thread::sleep((due - now).min(self.deadline - now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_loopback_addresses_are_attacked() {
        for ok in ["127.0.0.1:4700", "127.8.9.10:1", "[::1]:4700"] {
            assert!(loopback(ok.parse().unwrap()).is_ok(), "{ok}");
        }
        for off in [
            "192.0.2.1:4700",
            "0.0.0.0:4700",
            "[::]:4700",
            "[2001:db8::1]:1",
        ] {
            let addr: SocketAddr = off.parse().unwrap();
            assert!(
                matches!(loopback(addr), Err(AttackError::NotLoopback(a)) if a == addr),
                "{off}"
            );
        }
    }

    #[test]
    fn an_item_waits_for_its_turn() {
        let start = Instant::now();
        let pace = Pace::new(2, start + Duration::from_millis(200));
        assert!(pace.wait(0));
        assert!(pace.wait(1));
        // The second of two items is due at 45% of the time.
        assert!(start.elapsed() >= Duration::from_millis(90));
    }

    #[test]
    fn nothing_is_due_after_the_deadline() {
        let pace = Pace::new(1_000_000, Instant::now() + Duration::from_millis(30));
        assert!(pace.wait(0));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!pace.wait(1));
    }
}
