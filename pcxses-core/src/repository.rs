//! Where the AC keeps the object code of every essential computation.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

/// Object code by identifier. The AC reads objects only when it builds a MORPH.
pub trait Repository {
    /// The bytes of object `id`, if the repository holds it.
    fn object(&self, id: &str) -> Option<&[u8]>;
}

/// A repository held in memory.
///
/// ```
/// use pcxses_core::{MemoryRepository, Repository};
///
/// let mut repo = MemoryRepository::default();
/// repo.insert("counter.wasm", b"\0asm...".to_vec());
/// assert_eq!(repo.object("counter.wasm").map(<[u8]>::len), Some(7));
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryRepository {
    objects: BTreeMap<String, Vec<u8>>,
}

impl MemoryRepository {
    /// Stores `bytes` as object `id`, replacing any earlier version.
    pub fn insert(&mut self, id: impl Into<String>, bytes: Vec<u8>) {
        self.objects.insert(id.into(), bytes);
    }
}

impl Repository for MemoryRepository {
    fn object(&self, id: &str) -> Option<&[u8]> {
        self.objects.get(id).map(Vec::as_slice)
    }
}
