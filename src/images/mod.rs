//! The image store: analysed images kept by content hash (`ab/abcd…`), so the
//! images behind corrected verdicts can be trained on later. Writes are
//! atomic and synced (`crate::atomic`), so a reader never sees half an image
//! and a verdict committed after `put` never names a lost one. Images unused
//! for `image_store.retain_days` are deleted (`retention`), except those of
//! corrected verdicts.

mod files;
pub mod retention;

pub use retention::{spawn_sweeper, sweep_once, SweepError, SweepReport};

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// A temporary file this much older than now belongs to a writer that
/// crashed: a live one writes it and renames it within seconds, and every
/// write moves its mtime. Younger ones may be another worker's, in progress.
pub const TEMP_MAX_AGE: Duration = Duration::from_secs(10 * 60);

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

    /// Stores the bytes once; an image already present keeps its bytes and
    /// is marked used now (its mtime), so retention counts from the last use.
    /// The image and its directory entries are on disk when this returns:
    /// the verdict that names it commits next.
    /// The bytes are shared with the caller (the worker also decodes them).
    pub async fn put(
        &self,
        sha256: &str,
        bytes: std::sync::Arc<Vec<u8>>,
    ) -> Result<(), ImageStoreError> {
        let path = self.path_of(sha256);
        blocking(path.clone(), move || files::put(&path, &bytes)).await
    }

    pub fn get(&self, sha256: &str) -> Result<Vec<u8>, ImageStoreError> {
        let path = self.path_of(sha256);
        std::fs::read(&path).map_err(|source| ImageStoreError { path, source })
    }

    /// Removes temporary files left by writers that crashed (older than
    /// `TEMP_MAX_AGE`; the volume may be shared with live writers). Returns
    /// how many there were. The sweeper (`spawn_sweeper`) runs this at start.
    pub async fn clean_temp(&self) -> Result<usize, ImageStoreError> {
        let dir = self.dir.clone();
        let older_than = SystemTime::now()
            .checked_sub(TEMP_MAX_AGE)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        blocking(self.dir.clone(), move || {
            files::clean_temp(&dir, older_than)
        })
        .await
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    path: PathBuf,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, ImageStoreError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(ImageStoreError { path, source }),
        Err(join) => Err(ImageStoreError {
            path,
            source: std::io::Error::other(join),
        }),
    }
}

#[cfg(test)]
mod tests;
