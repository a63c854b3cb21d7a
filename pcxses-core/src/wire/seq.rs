//! A sequence with a maximum length that is enforced while decoding, before allocating.

use alloc::vec::Vec;
use core::ops::Deref;

use serde::{Serialize, Serializer};

use super::decode::{decode_list, Decode, Reader};
use super::encode::{Encode, Writer};

/// A list of at most `N` items. Decoding a longer list fails before any item is allocated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct BoundedSeq<T, const N: usize>(Vec<T>);

impl<T, const N: usize> BoundedSeq<T, N> {
    /// An empty list.
    pub const fn new() -> Self {
        BoundedSeq(Vec::new())
    }

    /// Wraps `items`, or gives them back if there are more than `N`.
    pub fn from_vec(items: Vec<T>) -> Result<Self, Vec<T>> {
        if items.len() <= N {
            Ok(BoundedSeq(items))
        } else {
            Err(items)
        }
    }

    /// Appends an item, or gives it back if the list is full.
    pub fn push(&mut self, item: T) -> Result<(), T> {
        if self.0.len() < N {
            self.0.push(item);
            Ok(())
        } else {
            Err(item)
        }
    }

    /// The items.
    pub fn into_vec(self) -> Vec<T> {
        self.0
    }
}

impl<T, const N: usize> Deref for BoundedSeq<T, N> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T: Serialize, const N: usize> Serialize for BoundedSeq<T, N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<T: Encode, const N: usize> Encode for BoundedSeq<T, N> {
    fn encode(&self, w: &mut Writer<'_>) {
        self.0.encode(w);
    }
}

impl<'a, T: Decode<'a>, const N: usize> Decode<'a> for BoundedSeq<T, N> {
    fn decode(r: &mut Reader<'a>) -> Self {
        BoundedSeq(decode_list(r, N))
    }
}
