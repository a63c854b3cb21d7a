//! Bytes no AC accepts: random bytes, truncated bottles, lengths that lie, and
//! well-formed HELLOs for sessions that do not exist.

use crate::next;

/// The `i`-th piece of junk: in turn random bytes (up to 1,199), a bottle cut short, a
/// state chunk claiming 2^32−1 bytes, and a HELLO for a random session.
pub fn junk(rng: &mut u64, i: usize) -> Vec<u8> {
    match i % 4 {
        0 => {
            let len = next(rng) % 1200;
            (0..len).map(|_| next(rng) as u8).collect()
        }
        1 => vec![1, 2, 0xde, 0xad],
        2 => vec![
            1, 4, 1, 2, 3, 4, 0, 1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 9,
        ],
        _ => {
            let s = (next(rng) as u32).to_le_bytes();
            vec![1, 2, s[0], s[1], s[2], s[3], 1, 0]
        }
    }
}

/// Stream prefixes that break framing: a length above 2^32−1, a non-shortest length, and
/// a length of zero.
pub const BROKEN_PREFIXES: [&[u8]; 3] = [&[0xff, 0xff, 0xff, 0xff, 0x0f], &[0x80, 0x00], &[0x00]];

#[cfg(test)]
mod tests {
    use super::*;
    use pcxses_core::wire::Bottle;
    use pcxses_core::Limits;

    #[test]
    fn no_junk_decodes_as_a_bottle_but_the_hellos_for_made_up_sessions() {
        let mut rng = 7;
        for i in 0..400 {
            let bytes = junk(&mut rng, i);
            let decoded = Bottle::decode(&bytes, &Limits::DEFAULT);
            assert_eq!(decoded.is_ok(), i % 4 == 3, "junk {i}: {decoded:?}");
        }
    }
}
