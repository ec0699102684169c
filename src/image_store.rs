//! The image store: analysed images kept by content hash (`ab/abcd…`), so the
//! images behind corrected verdicts can be trained on later. Writes go to a
//! temporary name and are renamed, so a reader never sees half an image.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct ImageStore {
    dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
#[error("image store {path}: {source}")]
pub struct ImageStoreError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl ImageStore {
    pub fn new(dir: impl Into<PathBuf>) -> ImageStore {
        ImageStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the image with this sha256 (lower-case hex) lives.
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        let shard = sha256.get(..2).unwrap_or("xx");
        self.dir.join(shard).join(sha256)
    }

    /// Stores the bytes once; an image already present is left as it is.
    pub async fn put(&self, sha256: &str, bytes: &[u8]) -> Result<(), ImageStoreError> {
        let path = self.path_of(sha256);
        let err = |source| ImageStoreError {
            path: path.clone(),
            source,
        };
        if tokio::fs::try_exists(&path).await.map_err(err)? {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(err)?;
        }
        let tmp = path.with_extension(format!(
            "tmp.{}.{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        tokio::fs::write(&tmp, bytes).await.map_err(err)?;
        tokio::fs::rename(&tmp, &path).await.map_err(err)
    }

    pub fn get(&self, sha256: &str) -> Result<Vec<u8>, ImageStoreError> {
        let path = self.path_of(sha256);
        std::fs::read(&path).map_err(|source| ImageStoreError { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_once_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path());
        let sha = "ab".repeat(32);
        store.put(&sha, b"first").await.unwrap();
        store.put(&sha, b"second").await.unwrap();
        assert_eq!(store.get(&sha).unwrap(), b"first");
        assert!(store.path_of(&sha).starts_with(dir.path().join("ab")));
        assert!(store.get(&"cd".repeat(32)).is_err());
    }
}
