//! Hot swap: the worker polls the adapter registry and switches the engine to
//! the active adapter (or back, after a rollback) without a restart. The
//! engine applies a swap between requests: in-flight work finishes first.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use crate::engine::{sha256_file, AdapterSpec, Backend};
use crate::settings::Settings;
use crate::store::{AdapterRef, Store};

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
    }
}

/// Follows the registry until `stop`. `initial` is what the engine started
/// with, and what it serves again when no adapter is active.
pub async fn follow_registry<B: Backend>(
    store: Store,
    backend: Arc<B>,
    settings: Settings,
    initial: Option<AdapterSpec>,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let dir = PathBuf::from(&settings.adapters.dir);
    let mut serving = initial.clone();
    let name = |s: &Option<AdapterSpec>| s.as_ref().map_or("none", |s| s.id.as_str()).to_string();
    metrics.set_serving_adapter(&name(&serving));
    let poll = Duration::from_millis(settings.adapters.poll_ms.max(50));
    // A file that failed verification or loading is not retried until the
    // registry names something else.
    let mut refused: Option<(String, String)> = None;
    loop {
        match store.active_adapter_ref().await {
            Ok(active) => {
                let wanted = match &active {
                    Some(row) => Some(registry_spec(row, &dir)),
                    None => initial.clone(),
                };
                let key = active.as_ref().map(|r| (r.id.clone(), r.sha256.clone()));
                if wanted != serving && (key.is_none() || key != refused) {
                    match swap(backend.as_ref(), wanted.clone(), active.as_ref()).await {
                        Ok(()) => {
                            tracing::info!(adapter = %name(&wanted), "now serving adapter");
                            metrics.set_serving_adapter(&name(&wanted));
                            serving = wanted;
                            refused = None;
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "cannot switch to the registry's active adapter; keeping the current one");
                            refused = key;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "adapter registry unavailable; keeping the current adapter")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = stop.cancelled() => return,
        }
    }
}

async fn swap<B: Backend>(
    backend: &B,
    spec: Option<AdapterSpec>,
    row: Option<&AdapterRef>,
) -> anyhow::Result<()> {
    if let (Some(spec), Some(row)) = (&spec, row) {
        // Serve only the bytes the registry evaluated.
        let (path, expected) = (spec.path.clone(), row.sha256.clone());
        tokio::task::spawn_blocking(move || verify_file(&path, &expected)).await??;
    }
    backend.set_adapter(spec).await?;
    Ok(())
}
