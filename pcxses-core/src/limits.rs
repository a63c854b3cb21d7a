//! Protocol constants and the size limits a decoder enforces.

/// The protocol version byte that starts every bottle.
pub const PROTOCOL_VERSION: u8 = 1;

/// Longest device, computation or object name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 32;

/// Most objects one MORPH manifest may list.
pub const MAX_OBJECTS: usize = 8;

/// Most computations one device may be asked to run at once.
pub const MAX_HOSTED: usize = 8;

/// Default largest datagram, in bytes: safe on IPv6 and on most tunnels.
pub const DEFAULT_MTU: usize = 1200;

/// Largest bottle any framing may carry: chunk sizes are 16-bit on the wire.
pub const MAX_BOTTLE_LEN: usize = 65_535;

/// The limits a decoder enforces on a peer's bytes.
///
/// Every declared length is compared against these before anything is buffered or
/// allocated for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded bottle accepted, in bytes (the MTU for datagrams, the frame limit
    /// for streams). At most [`MAX_BOTTLE_LEN`].
    pub max_bottle: usize,
    /// Largest state (LKGS) of one computation, in bytes.
    pub max_state: u32,
    /// Largest MORPH stream (all objects plus the LKGS), in bytes.
    pub max_transfer: u32,
}

impl Limits {
    /// Limits for one bottle per datagram of at most `mtu` bytes.
    pub const fn datagram(mtu: usize) -> Limits {
        Limits {
            max_bottle: if mtu < MAX_BOTTLE_LEN {
                mtu
            } else {
                MAX_BOTTLE_LEN
            },
            ..Limits::DEFAULT
        }
    }

    /// The defaults: 1200-byte bottles, 64 KiB of state, 4 MiB per MORPH stream.
    pub const DEFAULT: Limits = Limits {
        max_bottle: DEFAULT_MTU,
        max_state: 64 * 1024,
        max_transfer: 4 * 1024 * 1024,
    };

    /// For a microcontroller with tens of kilobytes of RAM: 1200-byte bottles, 4 KiB of
    /// state and 64 KiB per MORPH stream, which the device holds in memory to verify it
    /// (the default 4 MiB is more than such a part has).
    pub const MICROCONTROLLER: Limits = Limits {
        max_bottle: DEFAULT_MTU,
        max_state: 4 * 1024,
        max_transfer: 64 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
