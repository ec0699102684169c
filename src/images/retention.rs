//! Retention: images unused for `image_store.retain_days` are deleted, except
//! those of corrected verdicts (training data). Like Kafka's log cleaner, a
//! background task that goes over the store in bounded steps: one shard
//! directory listed at a time on the blocking pool, and its old images
//! checked against the database in pages of `LOOKUP_PAGE`, so memory is
//! bounded by a shard's size (1/256 of the store), not the store's.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{blocking, files, ImageStore, ImageStoreError};
use crate::settings::ImageStoreSettings;
use crate::store::{Store, StoreError};

/// How often the sweeper runs after its first pass at start.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60 * 60);

/// Images asked about in one database query.
pub const LOOKUP_PAGE: usize = 500;

/// What a sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Images deleted.
    pub deleted: u64,
    /// Images past retention kept because a verdict of theirs is corrected.
    pub kept_corrected: u64,
    pub bytes_freed: u64,
    /// Images that could not be deleted (an I/O error; logged).
    pub failed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Files(#[from] ImageStoreError),
    /// Nothing unchecked is deleted: the pass stops here.
    #[error("looking up corrected images: {0}")]
    Store(#[from] StoreError),
}

/// When an image last used before this is past retention; None: keep all.
pub fn cutoff(retain_days: u32, now: SystemTime) -> Option<SystemTime> {
    if retain_days == 0 {
        return None;
    }
    let age = Duration::from_secs(u64::from(retain_days) * 24 * 60 * 60);
    // Before the epoch: nothing can be that old.
    Some(now.checked_sub(age).unwrap_or(SystemTime::UNIX_EPOCH))
}

/// One pass over the store: deletes the images last used more than
/// `retain_days` ago (0: none) whose verdicts have no correction. Stops
/// between shards once `stop` is cancelled.
pub async fn sweep_once(
    images: &ImageStore,
    db: &Store,
    retain_days: u32,
    stop: &CancellationToken,
) -> Result<SweepReport, SweepError> {
    let mut report = SweepReport::default();
    let Some(cutoff) = cutoff(retain_days, SystemTime::now()) else {
        return Ok(report);
    };
    let root = images.dir().to_path_buf();
    let shards = blocking(root.clone(), move || files::shard_dirs(&root)).await?;
    for shard in shards {
        if stop.is_cancelled() {
            break;
        }
        let dir = shard.clone();
        let old = blocking(shard.clone(), move || files::old_images(&dir, cutoff)).await?;
        for page in old.chunks(LOOKUP_PAGE) {
            let corrected = db.corrected_images(page).await?;
            report.kept_corrected += corrected.len() as u64;
            let doomed: Vec<String> = page
                .iter()
                .filter(|sha| !corrected.contains(*sha))
                .cloned()
                .collect();
            let dir = shard.clone();
            let done =
                blocking(shard.clone(), move || Ok(retire_all(&dir, &doomed, cutoff))).await?;
            report.deleted += done.deleted;
            report.bytes_freed += done.bytes_freed;
            report.failed += done.failed;
        }
    }
    Ok(report)
}

fn retire_all(shard: &std::path::Path, doomed: &[String], cutoff: SystemTime) -> SweepReport {
    let mut done = SweepReport::default();
    for sha in doomed {
        match files::retire(shard, sha, cutoff) {
            Ok(files::Retired::Deleted(bytes)) => {
                done.deleted += 1;
                done.bytes_freed += bytes;
            }
            Ok(files::Retired::InUse | files::Retired::Gone) => {}
            Err(e) => {
                done.failed += 1;
                tracing::warn!(image = %sha, error = %e, "image retention: cannot delete");
            }
        }
    }
    done
}

/// The background sweeper: cleans crashed writers' temporary files and
/// sweeps once at start, then every `SWEEP_EVERY`, until `stop`. Every worker
/// may run one on a shared volume: passes that overlap are safe (see
/// `files`), only redundant.
pub fn spawn_sweeper(
    images: ImageStore,
    db: Store,
    settings: &ImageStoreSettings,
    stop: CancellationToken,
) -> JoinHandle<()> {
    let retain_days = settings.retain_days;
    if retain_days == 0 {
        tracing::info!("image retention off (image_store.retain_days = 0): images are kept");
    }
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = every.tick() => {}
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = pass(&images, &db, retain_days, &stop) => {}
            }
        }
    })
}

/// One logged pass of the sweeper.
async fn pass(images: &ImageStore, db: &Store, retain_days: u32, stop: &CancellationToken) {
    match images.clean_temp().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            removed = n,
            "image store: removed temporary files of crashed writers"
        ),
        Err(e) => tracing::warn!(error = %e, "image store: cleaning temporary files failed"),
    }
    if retain_days == 0 {
        return;
    }
    match sweep_once(images, db, retain_days, stop).await {
        Ok(r) => tracing::info!(
            deleted = r.deleted,
            kept_corrected = r.kept_corrected,
            bytes_freed = r.bytes_freed,
            failed = r.failed,
            retain_days,
            "image retention pass"
        ),
        Err(e) => tracing::warn!(error = %e, "image retention pass failed; retrying next pass"),
    }
}
