//! The image store: analysed images kept by content hash (`ab/abcd…`), so the
//! images behind corrected verdicts can be trained on later. Writes are
//! atomic and synced (`crate::atomic`), so a reader never sees half an image.

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
    /// The bytes are shared with the caller (the worker also decodes them).
    pub async fn put(
        &self,
        sha256: &str,
        bytes: std::sync::Arc<Vec<u8>>,
    ) -> Result<(), ImageStoreError> {
        let path = self.path_of(sha256);
        let err = |source| ImageStoreError {
            path: path.clone(),
            source,
        };
        if tokio::fs::try_exists(&path).await.map_err(err)? {
            return Ok(());
        }
        let target = path.clone();
        tokio::task::spawn_blocking(move || crate::atomic::write_once(&target, &bytes))
            .await
            .map_err(|e| err(std::io::Error::other(e)))?
            .map(|_| ())
            .map_err(err)
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
        store.put(&sha, b"first".to_vec().into()).await.unwrap();
        store.put(&sha, b"second".to_vec().into()).await.unwrap();
        assert_eq!(store.get(&sha).unwrap(), b"first");
        assert!(store.path_of(&sha).starts_with(dir.path().join("ab")));
        assert!(store.get(&"cd".repeat(32)).is_err());
    }
}
