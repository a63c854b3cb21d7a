//! Strict decoding of the postcard encoding: every varint in its shortest form and within
//! its type's width, bools and option tags 0 or 1, lengths within the input and lists within
//! their bounds, checked as each field is read.

use alloc::vec::Vec;

use super::codec::DecodeError;

/// Reads fields from the front of a byte string. The first fault is kept and every read
/// after it gives a default value without consuming anything, so a decoder reads all its
/// fields unconditionally and [`Reader::finish`] tells whether they were there.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    fault: Option<DecodeError>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes, fault: None }
    }

    /// The first fault, else bytes left after what was read.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        match (self.fault, self.bytes.len()) {
            (Some(fault), _) => Err(fault),
            (None, 0) => Ok(()),
            (None, n) => Err(DecodeError::Trailing(n)),
        }
    }

    /// Records `fault` unless one came first.
    pub(crate) fn fail(&mut self, fault: DecodeError) {
        self.fault.get_or_insert(fault);
        self.bytes = &[];
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        if n > self.bytes.len() {
            self.fail(DecodeError::Truncated);
            return &[];
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        taken
    }

    fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => {
                self.fail(DecodeError::Truncated);
                0
            }
        }
    }

    /// A varint of an integer `bits` wide: refused if it does not fit, or if a shorter
    /// form would do (a last group of zero after the first).
    fn varint(&mut self, bits: u32) -> u64 {
        let mut value = 0u64;
        let mut shift = 0;
        loop {
            let b = self.byte();
            let group = u64::from(b & 0x7f);
            let last = b & 0x80 == 0;
            // The group that reaches the type's width must be the last, and hold no more
            // than the bits left.
            let too_wide =
                shift >= bits || (bits - shift <= 7 && (!last || group >> (bits - shift) != 0));
            if too_wide || (last && b == 0 && shift > 0) {
                self.fail(DecodeError::Malformed);
                return 0;
            }
            value |= group << shift;
            if last {
                return value;
            }
            shift += 7;
        }
    }

    /// An enum's variant index.
    pub(crate) fn variant(&mut self) -> u32 {
        self.varint(32) as u32
    }

    /// A length of bytes or a count of items (a `u32`): no more than the bytes left, as
    /// every item takes at least one.
    fn len(&mut self) -> usize {
        let len = self.varint(32);
        match usize::try_from(len) {
            Ok(len) if len <= self.bytes.len() => len,
            _ => {
                self.fail(DecodeError::Truncated);
                0
            }
        }
    }
}

/// A type read from its postcard encoding. What a faulty reader gives is a placeholder,
/// discarded when [`Reader::finish`] reports the fault.
pub(crate) trait Decode<'a> {
    fn decode(r: &mut Reader<'a>) -> Self;
}

impl Decode<'_> for u16 {
    fn decode(r: &mut Reader<'_>) -> u16 {
        r.varint(16) as u16
    }
}

impl Decode<'_> for u32 {
    fn decode(r: &mut Reader<'_>) -> u32 {
        r.varint(32) as u32
    }
}

impl Decode<'_> for u64 {
    fn decode(r: &mut Reader<'_>) -> u64 {
        r.varint(64)
    }
}

impl Decode<'_> for bool {
    fn decode(r: &mut Reader<'_>) -> bool {
        match r.byte() {
            0 => false,
            1 => true,
            _ => {
                r.fail(DecodeError::Malformed);
                false
            }
        }
    }
}

impl<const N: usize> Decode<'_> for [u8; N] {
    fn decode(r: &mut Reader<'_>) -> [u8; N] {
        r.take(N).try_into().unwrap_or([0; N])
    }
}

impl<'a> Decode<'a> for &'a [u8] {
    fn decode(r: &mut Reader<'a>) -> &'a [u8] {
        let len = r.len();
        r.take(len)
    }
}

impl<'a> Decode<'a> for &'a str {
    fn decode(r: &mut Reader<'a>) -> &'a str {
        let bytes = <&[u8]>::decode(r);
        core::str::from_utf8(bytes).unwrap_or_else(|_| {
            r.fail(DecodeError::Malformed);
            ""
        })
    }
}

impl<'a, T: Decode<'a>> Decode<'a> for Option<T> {
    fn decode(r: &mut Reader<'a>) -> Option<T> {
        bool::decode(r).then(|| T::decode(r))
    }
}

/// A list of at most `max` items: a longer one is refused before anything is allocated.
pub(crate) fn decode_list<'a, T: Decode<'a>>(r: &mut Reader<'a>, max: usize) -> Vec<T> {
    let mut len = r.len();
    if len > max {
        r.fail(DecodeError::Malformed);
        len = 0;
    }
    (0..len).map(|_| T::decode(r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(bytes: &[u8], bits: u32) -> Result<u64, DecodeError> {
        read(bytes, |r| r.varint(bits))
    }

    fn read<'a, T>(
        bytes: &'a [u8],
        f: impl FnOnce(&mut Reader<'a>) -> T,
    ) -> Result<T, DecodeError> {
        let mut r = Reader::new(bytes);
        let value = f(&mut r);
        r.finish().map(|()| value)
    }

    #[test]
    fn a_varint_is_refused_past_its_width_or_longer_than_needed() {
        assert_eq!(varint(&[0xff, 0xff, 0x03], 16), Ok(0xffff));
        assert_eq!(varint(&[0x80, 0x80, 0x04], 16), Err(DecodeError::Malformed));
        assert_eq!(varint(&[0xff, 0xff, 0xff, 0xff, 0x0f], 32), Ok(0xffff_ffff));
        assert_eq!(
            varint(&[0x80, 0x80, 0x80, 0x80, 0x10], 32),
            Err(DecodeError::Malformed)
        );
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(varint(&max, 64), Ok(u64::MAX));
        let mut over = max;
        over[9] = 0x02;
        assert_eq!(varint(&over, 64), Err(DecodeError::Malformed));
        assert_eq!(varint(&[0x80, 0x00], 64), Err(DecodeError::Malformed));
        assert_eq!(varint(&[0x00], 64), Ok(0));
        assert_eq!(varint(&[0x80], 64), Err(DecodeError::Truncated));
        // A group that reaches the width but is not the last is malformed, not truncated.
        assert_eq!(
            varint(&[0x8b, 0xdc, 0xf0, 0x98, 0x83], 32),
            Err(DecodeError::Malformed)
        );
        assert_eq!(varint(&[0xff, 0xff, 0x83], 16), Err(DecodeError::Malformed));
    }

    #[test]
    fn a_length_past_the_input_is_truncated_and_a_long_list_refused_before_it_allocates() {
        assert_eq!(
            read(&[3, b'a', b'b'], <&str>::decode),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            read(&[2, 0xff, 0xfe], <&str>::decode),
            Err(DecodeError::Malformed)
        );
        fn list(r: &mut Reader<'_>) -> Vec<u16> {
            decode_list(r, 2)
        }
        assert_eq!(read(&[3, 1, 2, 3], list), Err(DecodeError::Malformed));
        assert_eq!(read(&[2, 1, 2], list), Ok(alloc::vec![1, 2]));
        assert_eq!(
            read(&[2], Option::<u16>::decode),
            Err(DecodeError::Malformed)
        );
        // The first fault is the one reported, and nothing is read after it.
        fn pair<'a>(r: &mut Reader<'a>) -> (u16, &'a str) {
            (u16::decode(r), <&str>::decode(r))
        }
        assert_eq!(read(&[0x80, 0x00, 9], pair), Err(DecodeError::Malformed));
    }
}
