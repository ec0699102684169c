//! Hot swap: the worker polls the adapter registry and switches the engine to
//! the active adapter (or back, after a rollback) without a restart. The
//! engine applies a swap between requests: in-flight work finishes first.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{registry_spec, verify_entry};
use crate::domain::adapter::AdapterRef;
use crate::engine::{AdapterSpec, Backend};
use crate::settings::Settings;
use crate::store::Store;

/// Follows the registry until `stop`; `on_serving` hears the id of each
/// adapter the engine switches to ("none": the base model). `initial` is what the engine started
/// with, and what it serves again when no adapter is active.
pub async fn follow_registry<B: Backend>(
    store: Store,
    backend: Arc<B>,
    settings: Settings,
    initial: Option<AdapterSpec>,
    on_serving: impl Fn(&str) + Send + Sync,
    stop: CancellationToken,
) {
    let dir = PathBuf::from(&settings.adapters.dir);
    let mut serving = initial.clone();
    let name = |s: &Option<AdapterSpec>| s.as_ref().map_or("none", |s| s.id.as_str()).to_string();
    on_serving(&name(&serving));
    let poll = settings
        .adapters
        .poll_interval
        .max(Duration::from_millis(50));
    // A file that failed verification or loading is not retried until the
    // registry names something else.
    let mut refused: Option<(String, String, Option<String>)> = None;
    loop {
        match store.active_adapter_ref().await {
            Ok(active) => {
                let wanted = match &active {
                    Some(row) => Some(registry_spec(row, &dir)),
                    None => initial.clone(),
                };
                let key = active
                    .as_ref()
                    .map(|r| (r.id.clone(), r.sha256.clone(), r.mmproj_sha256.clone()));
                if wanted != serving && (key.is_none() || key != refused) {
                    match swap(backend.as_ref(), wanted.clone(), active.as_ref(), &dir).await {
                        Ok(()) => {
                            tracing::info!(adapter = %name(&wanted), "now serving adapter");
                            on_serving(&name(&wanted));
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
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    if let (Some(_), Some(row)) = (&spec, row) {
        // Serve only the bytes the registry evaluated: the LoRA and its projector.
        let (row, dir) = (row.clone(), dir.to_path_buf());
        tokio::task::spawn_blocking(move || verify_entry(&row, &dir)).await??;
    }
    backend.set_adapter(spec).await?;
    Ok(())
}
