//! Encoding in postcard's format: varints in their shortest form, lengths before byte
//! strings and lists, fixed arrays as they are.

use alloc::vec::Vec;

/// Where a [`Writer`] puts its bytes.
enum Out<'o> {
    /// Appended to a vector, up to an absolute length.
    Vec { out: &'o mut Vec<u8>, limit: usize },
    /// Into a buffer, from a position.
    Slice { buf: &'o mut [u8], at: usize },
}

/// Writes fields one after another. Once a write does not fit, nothing more is written and
/// [`Writer::finish`] reports it.
pub(crate) struct Writer<'o> {
    out: Out<'o>,
    full: bool,
}

impl<'o> Writer<'o> {
    /// Appends to `out` until it is `limit` bytes long.
    pub(crate) fn to_vec(out: &'o mut Vec<u8>, limit: usize) -> Writer<'o> {
        Writer {
            out: Out::Vec { out, limit },
            full: false,
        }
    }

    /// Writes into `buf` from its start.
    pub(crate) fn to_slice(buf: &'o mut [u8]) -> Writer<'o> {
        Writer {
            out: Out::Slice { buf, at: 0 },
            full: false,
        }
    }

    /// Where the output ends (the vector's length, or the bytes written into the buffer),
    /// or `None` if it did not fit.
    pub(crate) fn finish(self) -> Option<usize> {
        match (self.full, self.out) {
            (true, _) => None,
            (false, Out::Vec { out, .. }) => Some(out.len()),
            (false, Out::Slice { at, .. }) => Some(at),
        }
    }

    /// Writes `bytes` as they are.
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        if self.full {
            return;
        }
        match &mut self.out {
            Out::Vec { out, limit } if out.len() + bytes.len() <= *limit => {
                out.extend_from_slice(bytes)
            }
            Out::Slice { buf, at } => match buf.get_mut(*at..*at + bytes.len()) {
                Some(to) => {
                    to.copy_from_slice(bytes);
                    *at += bytes.len();
                }
                None => self.full = true,
            },
            Out::Vec { .. } => self.full = true,
        }
    }

    /// Writes `v` as a varint in its shortest form.
    pub(crate) fn varint(&mut self, mut v: u64) {
        let mut bytes = [0u8; 10];
        let mut n = 0;
        while v >= 0x80 {
            bytes[n] = v as u8 | 0x80;
            v >>= 7;
            n += 1;
        }
        bytes[n] = v as u8;
        self.raw(&bytes[..=n]);
    }
}

/// A type written in its postcard encoding.
pub(crate) trait Encode {
    fn encode(&self, w: &mut Writer<'_>);
}

impl Encode for u16 {
    fn encode(&self, w: &mut Writer<'_>) {
        w.varint(u64::from(*self));
    }
}

impl Encode for u32 {
    fn encode(&self, w: &mut Writer<'_>) {
        w.varint(u64::from(*self));
    }
}

impl Encode for u64 {
    fn encode(&self, w: &mut Writer<'_>) {
        w.varint(*self);
    }
}

impl Encode for bool {
    fn encode(&self, w: &mut Writer<'_>) {
        w.raw(&[u8::from(*self)]);
    }
}

impl<const N: usize> Encode for [u8; N] {
    fn encode(&self, w: &mut Writer<'_>) {
        w.raw(self);
    }
}

impl Encode for &[u8] {
    fn encode(&self, w: &mut Writer<'_>) {
        w.varint(self.len() as u64);
        w.raw(self);
    }
}

impl Encode for &str {
    fn encode(&self, w: &mut Writer<'_>) {
        self.as_bytes().encode(w);
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, w: &mut Writer<'_>) {
        self.is_some().encode(w);
        if let Some(v) = self {
            v.encode(w);
        }
    }
}

impl<T: Encode> Encode for [T] {
    fn encode(&self, w: &mut Writer<'_>) {
        w.varint(self.len() as u64);
        for item in self {
            item.encode(w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_varint_takes_its_shortest_form_and_a_full_writer_writes_nothing_more() {
        let mut out = Vec::new();
        let mut w = Writer::to_vec(&mut out, 16);
        for v in [0, 0x7f, 0x80, 0x3fff, u64::MAX] {
            w.varint(v);
        }
        assert_eq!(w.finish(), Some(16));
        let mut want = alloc::vec![0x00, 0x7f, 0x80, 0x01, 0xff, 0x7f];
        want.extend([0xff; 9]);
        want.push(0x01);
        assert_eq!(out, want);
        let mut buf = [0u8; 3];
        let mut w = Writer::to_slice(&mut buf);
        w.raw(&[1, 2]);
        w.raw(&[3, 4]);
        w.raw(&[5]);
        assert_eq!(w.finish(), None);
        assert_eq!(buf, [1, 2, 0]);
    }
}
