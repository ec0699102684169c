//! The adapter registry as the rest of the crate uses it: the adapter store
//! on disk (registry paths resolve into `adapters.dir`, files are checked
//! against the sha256 the registry recorded), registering an adapter file
//! (`register`, for what `learning` trains and for `import`), promoting one
//! after checking its file, hot swap in workers (`follow`), and adapters
//! trained elsewhere (`import`). The rows themselves live in `store`.

mod follow;
pub mod import;
mod register;

use std::path::{Path, PathBuf};

pub use follow::follow_registry;
pub use register::{register, AdapterId, RegisterError, Registration};

use crate::domain::adapter::AdapterRef;
use crate::domain::sha256_file;
use crate::engine::AdapterSpec;
use crate::settings::Settings;
use crate::store::{RegistryError, Store, StoreError};

/// Where a registry path points: relative paths live in the adapter store.
pub fn resolve_adapter_path(adapters_dir: &Path, path: &str) -> PathBuf {
    let p = PathBuf::from(path);
    if p.is_absolute() {
        p
    } else {
        adapters_dir.join(p)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdapterFileError {
    #[error("cannot read {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: sha256 {actual} differs from the registry's {expected}")]
    Changed {
        path: PathBuf,
        actual: String,
        expected: String,
    },
}

/// Checks that an adapter file is the one the registry recorded (blocking).
pub fn verify_file(path: &Path, expected: &str) -> Result<(), AdapterFileError> {
    let actual = sha256_file(path).map_err(|source| AdapterFileError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    if actual != expected {
        return Err(AdapterFileError::Changed {
            path: path.to_path_buf(),
            actual,
            expected: expected.to_string(),
        });
    }
    Ok(())
}

/// What the engine needs to apply a registry entry.
pub fn registry_spec(row: &AdapterRef, dir: &Path) -> AdapterSpec {
    AdapterSpec {
        id: row.id.clone(),
        path: resolve_adapter_path(dir, &row.path),
        scale: row.scale,
        mmproj: row
            .mmproj_path
            .as_deref()
            .map(|p| resolve_adapter_path(dir, p)),
    }
}

/// Checks an entry's files (the LoRA and its projector, if any) against the
/// sha256s the registry recorded (blocking).
pub fn verify_entry(row: &AdapterRef, dir: &Path) -> Result<(), AdapterFileError> {
    verify_file(&resolve_adapter_path(dir, &row.path), &row.sha256)?;
    if let (Some(path), Some(sha256)) = (&row.mmproj_path, &row.mmproj_sha256) {
        verify_file(&resolve_adapter_path(dir, path), sha256)?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error("no adapter `{0}` in the registry")]
    NotFound(String),
    #[error("not promoting")]
    Unverified(#[source] AdapterFileError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("the adapter store's blocking task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// Makes `id` the active adapter, recording `reason`, once its file is shown
/// to be the bytes the registry recorded: workers follow the registry, so an
/// adapter that was changed or lost on disk is never made theirs to serve.
pub async fn promote(
    store: &Store,
    settings: &Settings,
    id: &str,
    reason: &str,
) -> Result<(), PromoteError> {
    let row = store
        .adapter(id)
        .await?
        .ok_or_else(|| PromoteError::NotFound(id.to_string()))?;
    let (entry, dir): (AdapterRef, PathBuf) = ((&row).into(), settings.adapters.dir.clone().into());
    tokio::task::spawn_blocking(move || verify_entry(&entry, &dir))
        .await
        .map_err(PromoteError::Task)?
        .map_err(PromoteError::Unverified)?;
    store.promote_adapter(id, reason).await?;
    Ok(())
}
