//! A content-addressed object repository on disk: `objects/<sha256>` blobs and an
//! `index.toml` mapping object ids to digests.

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

/// Loads every object of the repository at `dir`, checking each blob against its digest.
pub fn load(dir: &Path) -> Result<MemoryRepository, RepositoryError> {
    let mut repo = MemoryRepository::default();
    for (id, digest) in index(dir)? {
        let bytes = read(&dir.join("objects").join(&digest))?;
        if hex(&Sha256::digest(&bytes)) != digest {
            return Err(RepositoryError::Corrupt { id, digest });
        }
        repo.insert(id, bytes);
    }
    Ok(repo)
}
