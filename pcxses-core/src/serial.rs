//! Framing for byte-serial links (a UART, a USB serial port): each bottle followed by its
//! CRC-32C, COBS-encoded, between zero bytes (PROTOCOL.md §6).
//!
//! A serial line has no packets and no checksum of its own: bytes are lost, flipped or
//! invented by noise. COBS leaves no zero byte inside a frame, so a zero always ends one
//! and the [`SerialDecoder`] starts afresh at the next: garbage costs the frame it touched
//! and nothing after it. The CRC catches what the noise changed inside a frame.

use alloc::vec::Vec;

use cobs::CobsEncoder;
use crc::{Crc, NoTable, CRC_32_ISCSI};

/// CRC-32C, computed bit by bit: no table in flash.
const CRC32C: Crc<u32, NoTable> = Crc::<u32, NoTable>::new(&CRC_32_ISCSI);

/// Bytes of the CRC after the bottle.
const CRC_LEN: usize = 4;

/// The frame delimiter.
const DELIMITER: u8 = 0;

/// The most bytes [`push_serial_frame`] writes for a bottle of `bottle_len` bytes: the
/// bottle and its CRC, COBS-encoded (one byte more per 254), and a zero byte either side.
pub const fn serial_frame_len(bottle_len: usize) -> usize {
    cobs::max_encoding_length(bottle_len + CRC_LEN) + 2
}

/// The most bytes between a frame's zeros that a decoder of bottles of at most
/// `max_bottle` bytes accepts and holds: the bottle and its CRC, COBS-encoded, and one byte
/// more for encoders that end a frame whose last run is 254 bytes long with a code `01`.
pub const fn max_encoded_len(max_bottle: usize) -> usize {
    cobs::max_encoding_length(max_bottle + CRC_LEN) + 1
}

/// Appends one frame holding `bottle` (bytes already encoded, by a machine's
/// `poll_output`) to `out`: a zero byte, the COBS encoding of the bottle and its CRC-32C
/// (little-endian), and a zero byte. The leading zero ends whatever garbage the line
/// carried before, so that it cannot spoil this frame.
pub fn push_serial_frame(bottle: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.push(DELIMITER);
    let body = out.len();
    out.resize(start + serial_frame_len(bottle.len()), 0);
    let crc = CRC32C.checksum(bottle).to_le_bytes();
    let mut encoder = CobsEncoder::new(&mut out[body..]);
    // The room was sized for the longest encoding, so neither push can run out of it.
    let written = match (encoder.push(bottle), encoder.push(&crc)) {
        (Ok(()), Ok(())) => encoder.finalize(),
        _ => {
            out.truncate(start);
            return;
        }
    };
    out.truncate(body + written);
    out.push(DELIMITER);
}

/// What a [`SerialDecoder`] has received and dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SerialStats {
    /// Frames decoded whole, their CRC correct.
    pub frames: u64,
    /// Frames dropped: a CRC that does not match, a COBS code that runs past the frame's
    /// end, fewer bytes than a CRC, or more than the decoder's limit. Garbage between
    /// frames counts as one such frame.
    pub dropped: u64,
    /// Bytes of the dropped frames, delimiters not counted.
    pub dropped_bytes: u64,
}

/// Incremental decoder of a serial line's bytes.
///
/// Feed it whatever each read returned; it yields the bottles of the frames whose CRC
/// holds. It never fails: a bad frame is dropped, counted ([`SerialDecoder::stats`]), and
/// decoding goes on at the next zero byte. Its memory is fixed when it is made: one
/// frame of the largest bottle it accepts.
///
/// ```
/// use pcxses_core::serial::{push_serial_frame, SerialDecoder};
///
/// let mut line = Vec::new();
/// push_serial_frame(&[1, 0, 2], &mut line);
/// line.extend_from_slice(&[7, 7, 7]); // noise
/// push_serial_frame(&[3, 4], &mut line);
///
/// let mut decoder = SerialDecoder::new(64);
/// let mut bottles = Vec::new();
/// for read in line.chunks(2) {
///     let mut input = read;
///     while let Some(bottle) = decoder.decode(&mut input) {
///         bottles.push(bottle.to_vec());
///     }
/// }
/// assert_eq!(bottles, [vec![1, 0, 2], vec![3, 4]]);
/// assert_eq!(decoder.stats().dropped, 1, "the noise, as a frame of its own");
/// ```
#[derive(Debug)]
pub struct SerialDecoder {
    /// Encoded bytes of the frame being read, decoded in place once it ends.
    frame: Vec<u8>,
    /// The largest bottle accepted.
    max_bottle: usize,
    /// The most encoded bytes a frame of the largest bottle takes ([`max_encoded_len`]).
    max_encoded: usize,
    /// Bytes of the current frame beyond `max_encoded`: it is dropped when it ends.
    overflow: u64,
    /// `frame` holds a bottle handed out by the last call.
    handed_out: bool,
    stats: SerialStats,
}

impl SerialDecoder {
    /// A decoder accepting bottles of at most `max_bottle` bytes.
    pub fn new(max_bottle: usize) -> SerialDecoder {
        let max_encoded = max_encoded_len(max_bottle);
        SerialDecoder {
            frame: Vec::with_capacity(max_encoded),
            max_bottle,
            max_encoded,
            overflow: 0,
            handed_out: false,
            stats: SerialStats::default(),
        }
    }

    /// What was received and dropped so far.
    pub fn stats(&self) -> SerialStats {
        self.stats
    }

    /// Bytes of memory held for a frame: the same from the first call to the last.
    pub fn buffered(&self) -> usize {
        self.frame.capacity()
    }

    /// Consumes bytes from the front of `input` and returns the next bottle whose frame
    /// ended and checked out, or `None` once `input` is used up without one. Call it again
    /// while it returns bottles.
    pub fn decode<'r>(&'r mut self, input: &mut &[u8]) -> Option<&'r [u8]> {
        if core::mem::take(&mut self.handed_out) {
            self.frame.clear();
        }
        while !input.is_empty() {
            let end = input.iter().position(|&b| b == DELIMITER);
            let (bytes, rest) = match end {
                Some(i) => (&input[..i], &input[i + 1..]),
                None => (*input, &[][..]),
            };
            *input = rest;
            let room = self.max_encoded - self.frame.len();
            let kept = bytes.len().min(room);
            self.frame.extend_from_slice(&bytes[..kept]);
            self.overflow += (bytes.len() - kept) as u64;
            if end.is_some() {
                if let Some(len) = self.end_frame() {
                    self.handed_out = true;
                    return Some(&self.frame[..len]);
                }
            }
        }
        None
    }

    /// The frame in `frame` ended: its bottle's length, decoded in place, if it checks
    /// out; otherwise it is counted as dropped and cleared.
    fn end_frame(&mut self) -> Option<usize> {
        let encoded = self.frame.len();
        let overflow = core::mem::take(&mut self.overflow);
        if encoded == 0 && overflow == 0 {
            // Two zeros in a row: no frame between them.
            return None;
        }
        let decoded = cobs::decode_in_place(&mut self.frame).ok();
        let bottle = decoded.and_then(|len| len.checked_sub(CRC_LEN));
        let bottle = match bottle {
            Some(len) if overflow == 0 && (1..=self.max_bottle).contains(&len) => len,
            _ => return self.drop_frame(encoded as u64 + overflow),
        };
        let (body, crc) = self.frame.split_at(bottle);
        let crc: [u8; CRC_LEN] = crc[..CRC_LEN].try_into().unwrap_or_default();
        if CRC32C.checksum(body) != u32::from_le_bytes(crc) {
            return self.drop_frame(encoded as u64);
        }
        self.stats.frames += 1;
        Some(bottle)
    }

    fn drop_frame(&mut self, bytes: u64) -> Option<usize> {
        self.stats.dropped += 1;
        self.stats.dropped_bytes += bytes;
        self.frame.clear();
        None
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;

    fn decode_all(decoder: &mut SerialDecoder, line: &[u8], read: usize) -> Vec<Vec<u8>> {
        let mut bottles = Vec::new();
        for chunk in line.chunks(read.max(1)) {
            let mut input = chunk;
            while let Some(bottle) = decoder.decode(&mut input) {
                bottles.push(bottle.to_vec());
            }
        }
        bottles
    }

    #[test]
    fn the_frame_of_the_check_string_is_the_one_in_the_protocol() {
        let mut line = Vec::new();
        push_serial_frame(b"123456789", &mut line);
        let mut expected = vec![0x00, 0x0e];
        expected.extend_from_slice(b"123456789");
        expected.extend_from_slice(&[0x83, 0x92, 0x06, 0xe3, 0x00]);
        assert_eq!(line, expected);
    }

    #[test]
    fn bottles_of_any_bytes_come_back_whole_whatever_the_reads() {
        let bottles = [
            vec![0u8; 300],
            (0..=255).collect(),
            vec![1],
            vec![0, 0xff, 0],
        ];
        let mut line = Vec::new();
        for b in &bottles {
            push_serial_frame(b, &mut line);
        }
        for read in [1, 2, 7, 254, 255, line.len()] {
            let mut decoder = SerialDecoder::new(300);
            assert_eq!(decode_all(&mut decoder, &line, read), bottles);
            assert_eq!(decoder.stats().dropped, 0);
        }
    }

    #[test]
    fn a_frame_is_at_most_its_announced_length() {
        for len in [0, 1, 249, 250, 251, 254, 1200, 65_535] {
            let mut line = Vec::new();
            push_serial_frame(&vec![7u8; len], &mut line);
            assert!(line.len() <= serial_frame_len(len), "{len}");
            assert_eq!(line.iter().filter(|&&b| b == 0).count(), 2);
        }
    }

    #[test]
    fn a_flipped_bit_drops_its_frame_only() {
        let mut line = Vec::new();
        push_serial_frame(b"first", &mut line);
        let second = line.len();
        push_serial_frame(b"second", &mut line);
        push_serial_frame(b"third", &mut line);
        for bit in 0..8 {
            let mut noisy = line.clone();
            noisy[second + 3] ^= 1 << bit;
            let mut decoder = SerialDecoder::new(64);
            let got = decode_all(&mut decoder, &noisy, 3);
            // A flip to zero splits the frame in two, each dropped.
            let dropped = if noisy[second + 3] == 0 { 2 } else { 1 };
            assert_eq!(got, [b"first".to_vec(), b"third".to_vec()], "bit {bit}");
            assert_eq!(decoder.stats().dropped, dropped, "bit {bit}");
            assert_eq!(decoder.stats().frames, 2);
        }
    }

    #[test]
    fn a_frame_longer_than_the_limit_is_dropped_and_memory_stays_fixed() {
        let mut decoder = SerialDecoder::new(16);
        let held = decoder.buffered();
        let mut line = vec![0x55u8; 10_000];
        push_serial_frame(b"after", &mut line);
        let mut bottles = decode_all(&mut decoder, &line, 100);
        assert_eq!(bottles.pop().as_deref(), Some(&b"after"[..]));
        assert!(bottles.is_empty());
        assert_eq!(decoder.buffered(), held);
        let stats = decoder.stats();
        assert_eq!(
            (stats.frames, stats.dropped, stats.dropped_bytes),
            (1, 1, 10_000)
        );
        // A frame just over the limit as well, with a valid CRC.
        let mut line = Vec::new();
        push_serial_frame(&[9u8; 17], &mut line);
        assert!(decode_all(&mut decoder, &line, 5).is_empty());
        assert_eq!(decoder.stats().dropped, 2);
    }

    #[test]
    fn a_last_run_of_254_bytes_may_end_with_a_code_01() {
        // A bottle whose encoding ends with a full run of 254 bytes, at the limit.
        let bottle = vec![0x42u8; 250];
        let mut line = Vec::new();
        push_serial_frame(&bottle, &mut line);
        let mut decoder = SerialDecoder::new(250);
        assert_eq!(
            decode_all(&mut decoder, &line, 7),
            core::slice::from_ref(&bottle)
        );
        // The same frame as other encoders write it: a code 01 before the closing zero.
        let end = line.len() - 1;
        line.insert(end, 0x01);
        assert_eq!(decode_all(&mut decoder, &line, 7), [bottle]);
        assert_eq!(decoder.stats().dropped, 0);
    }

    #[test]
    fn frames_too_short_for_a_crc_are_dropped() {
        let mut decoder = SerialDecoder::new(64);
        // COBS of [1, 2, 3]: decodes, but holds no CRC.
        assert!(decode_all(&mut decoder, &[0, 4, 1, 2, 3, 0], 6).is_empty());
        // A COBS code that runs past the frame's end.
        assert!(decode_all(&mut decoder, &[0, 9, 1, 0], 4).is_empty());
        assert_eq!(decoder.stats().dropped, 2);
        assert_eq!(decoder.stats().frames, 0);
    }
}
