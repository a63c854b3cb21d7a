//! Noise on a serial line: a small deterministic source of it, and the spoiling of what a
//! relay passes on.

/// A small deterministic source of noise (a linear congruential generator).
pub struct Noise(pub u64);

impl Noise {
    /// The next 31 bits of noise.
    pub fn draw(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// Spoils `bytes` now and then: a flipped bit in one read in ten, random garbage after
    /// one in eight. Returns what to pass on.
    pub fn spoil(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        if self.draw().is_multiple_of(10) {
            let at = self.draw() as usize % out.len();
            out[at] ^= 1 << (self.draw() % 8);
        }
        if self.draw().is_multiple_of(8) {
            out.extend((0..24).map(|_| self.draw() as u8));
        }
        out
    }
}
