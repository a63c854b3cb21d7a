//! A content-addressed object repository on disk: `objects/<sha256>` blobs and an
//! `index.toml` mapping object ids to digests. A repository without its index is refused,
//! as is an object whose blob is missing or does not match its digest.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use pcxses_core::MemoryRepository;
use sha2::{Digest, Sha256};

/// What can go wrong with a repository.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The index is not valid TOML of the expected shape.
    #[error("{path}: {message}")]
    Index {
        /// The index file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The directory has no `index.toml`.
    #[error("{0}: no index.toml: not a repository (see `pcxses-ac add-object`)")]
    NoIndex(PathBuf),
    /// A blob's content does not match its name.
    #[error("object {id:?}: blob {digest} is corrupt")]
    Corrupt {
        /// The object.
        id: String,
        /// Its recorded digest.
        digest: String,
    },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read(path: &Path) -> Result<Vec<u8>, RepositoryError> {
    fs::read(path).map_err(|source| RepositoryError::Io {
        path: path.into(),
        source,
    })
}

fn index(dir: &Path) -> Result<BTreeMap<String, String>, RepositoryError> {
    let path = dir.join("index.toml");
    if !path.exists() {
        return Ok(BTreeMap::new());
    }
    let text = String::from_utf8(read(&path)?).map_err(|e| RepositoryError::Index {
        path: path.clone(),
        message: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e| RepositoryError::Index {
        path,
        message: e.to_string(),
    })
}

/// Stores `bytes` as object `id` in the repository at `dir` (created if missing) and
/// returns its SHA-256 in hex.
pub fn add(dir: &Path, id: &str, bytes: &[u8]) -> Result<String, RepositoryError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RepositoryError::Io { path, source }
    };
    let objects = dir.join("objects");
    fs::create_dir_all(&objects).map_err(io_err(&objects))?;
    let digest = hex(&Sha256::digest(bytes));
    let blob = objects.join(&digest);
    fs::write(&blob, bytes).map_err(io_err(&blob))?;
    let mut idx = index(dir)?;
    idx.insert(id.into(), digest.clone());
    let path = dir.join("index.toml");
    let text = toml::to_string(&idx).map_err(|e| RepositoryError::Index {
        path: path.clone(),
        message: e.to_string(),
    })?;
    fs::write(&path, text).map_err(io_err(&path))?;
    Ok(digest)
}

/// What [`verify`] found in a repository.
#[derive(Debug, Default)]
pub struct Verified {
    /// Every object whose blob matches its digest.
    pub objects: MemoryRepository,
    /// Every id the index lists, with its digest, sound or not.
    pub index: BTreeMap<String, String>,
    /// Everything wrong: no index, a missing or corrupt blob, each listed.
    pub errors: Vec<RepositoryError>,
}

/// Loads every object of the repository at `dir` that is sound, checking each blob
/// against its digest, and lists every problem rather than stopping at the first.
pub fn verify(dir: &Path) -> Verified {
    let mut found = Verified::default();
    if !dir.join("index.toml").is_file() {
        found.errors.push(RepositoryError::NoIndex(dir.into()));
        return found;
    }
    found.index = match index(dir) {
        Ok(index) => index,
        Err(e) => {
            found.errors.push(e);
            return found;
        }
    };
    for (id, digest) in &found.index {
        match read(&dir.join("objects").join(digest)) {
            Ok(bytes) if hex(&Sha256::digest(&bytes)) == *digest => {
                found.objects.insert(id.clone(), bytes)
            }
            Ok(_) => found.errors.push(RepositoryError::Corrupt {
                id: id.clone(),
                digest: digest.clone(),
            }),
            Err(e) => found.errors.push(e),
        }
    }
    found
}

/// Loads every object of the repository at `dir`, checking each blob against its digest;
/// the first problem [`verify`] finds is the error.
pub fn load(dir: &Path) -> Result<MemoryRepository, RepositoryError> {
    let mut found = verify(dir);
    match found.errors.is_empty() {
        true => Ok(found.objects),
        false => Err(found.errors.swap_remove(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_lists_every_missing_or_corrupt_object() {
        let dir = std::env::temp_dir().join(format!("pcxses-repo-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        assert!(matches!(
            &verify(&dir).errors[..],
            [RepositoryError::NoIndex(_)]
        ));
        assert!(
            load(&dir).is_err(),
            "a repository without its index is refused"
        );
        let a = add(&dir, "a", b"one").unwrap();
        let b = add(&dir, "b", b"two").unwrap();
        add(&dir, "c", b"three").unwrap();
        assert_eq!(verify(&dir).errors.len(), 0);
        fs::write(dir.join("objects").join(&a), b"not one").unwrap();
        fs::remove_file(dir.join("objects").join(&b)).unwrap();
        let found = verify(&dir);
        let errors: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("\"a\"") && errors[0].contains("corrupt"));
        assert!(errors[1].contains(&b));
        assert_eq!(found.index.len(), 3);
        assert!(pcxses_core::Repository::object(&found.objects, "c").is_some());
        let _ = fs::remove_dir_all(&dir);
    }
}
