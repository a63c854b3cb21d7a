//! How many connections an AC keeps, and for how long: the bounds that hold against a peer
//! that opens connections and never speaks, or speaks only junk.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// Bounds on the connections an AC serves ([`crate::Server`]): every connection transport
/// keeps them.
///
/// A connection is *proven* once the controller accepted one of its bottles
/// (`Controller::handle_receive` returned `Ok`); until then anyone could be holding it.
///
/// - At most `max_connections` connections are open. A new one beyond that evicts the
///   oldest unproven connection; when every connection is proven, the new one is closed.
///   When the process runs out of file descriptors, the oldest unproven connection is
///   evicted too, so that a device can still get in.
/// - An unproven connection is closed `first_bottle` after it opened.
/// - A proven connection that sends no bottle for `idle` is closed.
///
/// A device reconnects by itself when its connection ends, and a dropped connection is not
/// a death: these bounds never cost a live device its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once, at most. Keep it below the process's file-descriptor
    /// limit (`ulimit -n`) with room for the AC's other files. Default: 4096.
    pub max_connections: usize,
    /// Time a connection has from opening to its first accepted bottle. A joined device
    /// sends its next HELLO at most one HELLO interval after it reconnects, so this must
    /// exceed the largest HELLO interval the AC accepts. Default: twice the largest HELLO
    /// interval ([`ConnectionLimits::for_intervals`]), 120 s for the library's defaults.
    pub first_bottle: Duration,
    /// Time a proven connection may go without a bottle. A device sends a HELLO every
    /// HELLO interval, so this only closes connections whose device is gone. Default: three
    /// times the largest dead interval the AC accepts, 30 min for the library's defaults.
    pub idle: Duration,
    /// QUIC handshakes in flight, at most: further connection attempts are refused until
    /// some complete. (TCP handshakes are the kernel's: its listen backlog bounds them.)
    /// Default: 64.
    pub max_handshakes: usize,
}

impl ConnectionLimits {
    /// Connections open at once by default.
    pub const MAX_CONNECTIONS: usize = 4096;
    /// QUIC handshakes in flight at once by default.
    pub const MAX_HANDSHAKES: usize = 64;

    /// The defaults for an AC that accepts HELLO intervals up to `hello_max` and dead
    /// intervals up to `dead_max` (`ControllerConfig::hello.max` and `dead.max`): the
    /// first bottle is awaited for two HELLO intervals (at least 1 s), an idle connection
    /// is closed after three dead intervals (at least 3 s).
    pub fn for_intervals(hello_max: Duration, dead_max: Duration) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: Self::MAX_CONNECTIONS,
            first_bottle: 2 * hello_max.max(Duration::from_millis(500)),
            idle: 3 * dead_max.max(Duration::from_secs(1)),
            max_handshakes: Self::MAX_HANDSHAKES,
        }
    }
}

impl Default for ConnectionLimits {
    /// [`ConnectionLimits::for_intervals`] with the largest intervals a default
    /// `ControllerConfig` accepts (HELLO 60 s, dead 10 min).
    fn default() -> Self {
        ConnectionLimits::for_intervals(Duration::from_secs(60), Duration::from_secs(600))
    }
}

/// What the connection bounds did, counted since the AC started.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    /// Connections open now.
    pub open: AtomicU64,
    /// `accept` calls that failed (file descriptors exhausted, for one).
    pub accept_errors: AtomicU64,
    /// Unproven connections closed to make room for a new one.
    pub evicted: AtomicU64,
    /// New connections closed at once because every open one was proven.
    pub refused: AtomicU64,
    /// Unproven connections closed at their first-bottle deadline.
    pub unproven_expired: AtomicU64,
    /// Proven connections closed after their idle timeout.
    pub idle_expired: AtomicU64,
    /// Handshakes refused because too many were in flight (QUIC).
    pub handshakes_refused: AtomicU64,
    /// Peers that failed the TLS handshake or presented a certificate naming no device
    /// (QUIC).
    pub tls_refused: AtomicU64,
}
