//! The computations a session hosts, `(handle, computation)` in the order it was given
//! them: up to two inline (most devices host one or two), more on the heap, sized exactly.

use alloc::boxed::Box;
use alloc::vec::Vec;

/// How many entries fit inline.
const INLINE: usize = 2;

/// A session's hosted computations.
#[derive(Clone, Debug)]
pub(super) enum Hosted {
    Inline(u8, [(u16, u32); INLINE]),
    Heap(Box<[(u16, u32)]>),
}

impl Default for Hosted {
    fn default() -> Hosted {
        Hosted::Inline(0, [(0, 0); INLINE])
    }
}

impl Hosted {
    /// The entries, in order.
    pub(super) fn as_slice(&self) -> &[(u16, u32)] {
        match self {
            Hosted::Inline(len, items) => &items[..usize::from(*len)],
            Hosted::Heap(items) => items,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub(super) fn iter(&self) -> core::slice::Iter<'_, (u16, u32)> {
        self.as_slice().iter()
    }

    /// Adds an entry at the end.
    pub(super) fn push(&mut self, entry: (u16, u32)) {
        match self {
            Hosted::Inline(len, items) if usize::from(*len) < INLINE => {
                items[usize::from(*len)] = entry;
                *len += 1;
            }
            _ => {
                let mut all = Vec::with_capacity(self.len() + 1);
                all.extend_from_slice(self.as_slice());
                all.push(entry);
                *self = Hosted::Heap(all.into_boxed_slice());
            }
        }
    }
}

impl PartialEq for Hosted {
    fn eq(&self, other: &Hosted) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl From<Vec<(u16, u32)>> for Hosted {
    fn from(entries: Vec<(u16, u32)>) -> Hosted {
        match entries.len() {
            n if n <= INLINE => {
                let mut hosted = Hosted::default();
                entries.into_iter().for_each(|e| hosted.push(e));
                hosted
            }
            _ => Hosted::Heap(entries.into_boxed_slice()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn entries_stay_in_order_inline_and_on_the_heap() {
        let mut h = Hosted::default();
        assert_eq!(h.len(), 0);
        let mut expected = Vec::new();
        for i in 0..5u16 {
            h.push((i, u32::from(i) * 10));
            expected.push((i, u32::from(i) * 10));
            assert_eq!(h.as_slice(), &expected[..]);
            assert_eq!(Hosted::from(expected.clone()), h);
        }
        assert!(matches!(Hosted::from(vec![(1, 1)]), Hosted::Inline(1, _)));
        assert_eq!(core::mem::size_of::<Hosted>(), 24);
    }
}
