//! A sequence with a maximum length that is enforced while decoding, before allocating.

use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;
use core::ops::Deref;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for BoundedSeq<T, N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T, const N: usize>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for V<T, N> {
            type Value = BoundedSeq<T, N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a list of at most {N} items")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let declared = seq.size_hint().unwrap_or(0);
                if declared > N {
                    return Err(de::Error::invalid_length(declared, &self));
                }
                let mut items = Vec::with_capacity(declared);
                while let Some(item) = seq.next_element()? {
                    if items.len() == N {
                        return Err(de::Error::invalid_length(N + 1, &self));
                    }
                    items.push(item);
                }
                Ok(BoundedSeq(items))
            }
        }
        d.deserialize_seq(V::<T, N>(PhantomData))
    }
}
