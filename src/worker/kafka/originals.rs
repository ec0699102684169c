//! Where the originals of dead letters too large to carry their payload are
//! kept: `<image_store.dir>/dead-letters/<sha256>`, content-addressed, each
//! file written once, atomically and synced (`crate::atomic`, as the image
//! store does), so an operator can replay it by the letter's
//! `dfa-payload-ref` header and check it against `dfa-original-sha256`.

use std::path::{Path, PathBuf};

/// The folder under `image_store.dir` that holds the originals.
pub const DIR: &str = "dead-letters";

#[derive(Debug, Clone)]
pub struct Originals {
    dir: PathBuf,
}

/// An original kept on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub bytes: usize,
    /// Lower-case hex.
    pub sha256: String,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
#[error("dead-letter store {path}: {source}")]
pub struct KeepError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl Originals {
    /// The store under the image store's directory.
    pub fn under(image_store_dir: impl AsRef<Path>) -> Originals {
        Originals {
            dir: image_store_dir.as_ref().join(DIR),
        }
    }

    pub fn path_of(&self, sha256: &str) -> PathBuf {
        self.dir.join(sha256)
    }

    /// Keeps `payload` durably (once per content); hashing and writing run
    /// off the async threads.
    pub async fn keep(&self, payload: &[u8]) -> Result<Kept, KeepError> {
        let dir = self.dir.clone();
        let payload = payload.to_vec();
        let err = |path: PathBuf| move |source| KeepError { path, source };
        tokio::task::spawn_blocking(move || {
            let sha256 = crate::domain::sha256_hex(&payload);
            let path = dir.join(&sha256);
            crate::atomic::write_once(&path, &payload).map_err(err(path.clone()))?;
            Ok(Kept {
                bytes: payload.len(),
                sha256,
                path,
            })
        })
        .await
        .map_err(|e| err(self.dir.clone())(std::io::Error::other(e)))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_original_is_kept_once_by_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let originals = Originals::under(dir.path());
        let kept = originals.keep(b"a big message").await.unwrap();
        assert_eq!(kept.sha256, crate::domain::sha256_hex(b"a big message"));
        assert_eq!(kept.bytes, 13);
        assert_eq!(kept.path, dir.path().join(DIR).join(&kept.sha256));
        assert_eq!(originals.path_of(&kept.sha256), kept.path);
        assert_eq!(std::fs::read(&kept.path).unwrap(), b"a big message");
        let again = originals.keep(b"a big message").await.unwrap();
        assert_eq!(again, kept, "the same content is the same file");
        let files = std::fs::read_dir(dir.path().join(DIR)).unwrap().count();
        assert_eq!(files, 1, "no temporary file is left behind");
    }

    #[tokio::test]
    async fn an_unwritable_store_is_an_error_naming_its_path() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the folder should be: nothing can be written under it.
        std::fs::write(dir.path().join(DIR), b"not a folder").unwrap();
        let err = Originals::under(dir.path()).keep(b"x").await.unwrap_err();
        assert!(err.path.starts_with(dir.path().join(DIR)), "{err}");
    }
}
