//! `dfa worker`: Kafka requests → engine → Postgres verdicts + results topic.
//!
//! At-least-once: an offset is stored only after its request's verdict is
//! durable and published (or the message is dead-lettered), in order per
//! partition. Effects are idempotent by `request_id`, so redelivery after a
//! crash yields one row and an identical result message.

mod consume;
pub mod fatal;
pub mod feedback;
pub mod fetch;
pub mod health;
pub mod kafka;
pub mod metrics;
pub mod offsets;
mod outcome;
pub mod process;
mod reposts;
pub mod request;
pub mod retry;
pub mod trace;
pub mod writer;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::producer::FutureProducer;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::engine::{AdapterSpec, Backend};
use crate::settings::{Settings, WorkerSettings};
use crate::store::{Store, StoreError};
use consume::Intake;
use metrics::Metrics;
use process::Processor;
use retry::{GaveUp, RetryPolicy};

/// Runs until `stop` is cancelled, then drains and commits; the backend
/// serves `model.adapter` until the registry names one.
pub async fn run<B: Backend + 'static>(
    settings: Settings,
    backend: Arc<B>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let initial =
        crate::model::files::adapter_spec(&settings.model.adapter, settings.model.adapter_scale);
    run_serving(settings, backend, initial, stop).await
}

/// As `run`, for a backend started with `initial`: the adapter served while
/// the registry has none active.
pub async fn run_serving<B: Backend + 'static>(
    settings: Settings,
    backend: Arc<B>,
    initial: Option<AdapterSpec>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let w = &settings.worker;
    let metrics = serve_metrics(w).await?;
    let store = open_store(&settings, &stop).await?;
    // Cancelled only when the shutdown grace period is over: in-flight work
    // then gives up and its offsets stay unstored.
    let abandon = CancellationToken::new();
    let producer = kafka::producer(&settings.kafka).context("creating the producer")?;
    let processor = Arc::new(Processor::new(
        backend,
        store,
        producer.clone(),
        metrics,
        settings.clone(),
        abandon.clone(),
    )?);
    let follower = follow_registry(&processor, initial, &stop);
    // Cleans the image store's stale temp files at start, then applies
    // image_store.retain_days hourly.
    let sweeper = crate::images::spawn_sweeper(
        processor.images.clone(),
        processor.store.clone(),
        &settings.image_store,
        stop.clone(),
    );
    let health = processor.metrics.health.clone();
    let topic_watch = consume::topics::ensure(&settings.kafka, &health, &stop).await?;
    let grace = w.shutdown_grace;
    let mut intake = Intake::subscribe(
        &settings.kafka,
        processor.clone(),
        grace,
        w.max_in_flight,
        health,
    )?;

    intake.run_until(&stop).await;
    intake.drain(grace, &abandon).await;
    intake.close().await?;
    flush(producer).await?;
    for task in [follower, topic_watch, Some(sweeper)].into_iter().flatten() {
        task.abort();
    }
    if let Some(reason) = processor.fatal.reason() {
        anyhow::bail!("worker stopped: {reason}");
    }
    tracing::info!("worker stopped");
    Ok(())
}

/// Binds /healthz and /metrics.
async fn serve_metrics(w: &WorkerSettings) -> anyhow::Result<Metrics> {
    let metrics = Metrics::new();
    let addr = w.metrics_addr.parse().context("worker.metrics_addr")?;
    let bound = metrics::serve(addr, metrics.clone())
        .await
        .context("binding the metrics endpoint")?;
    tracing::info!(%bound, "serving /healthz and /metrics");
    Ok(metrics)
}

/// Connects to Postgres, retrying while it is unavailable, and migrates
/// when the settings say so.
async fn open_store(settings: &Settings, stop: &CancellationToken) -> anyhow::Result<Store> {
    let db = &settings.database;
    let connect = || Store::open(db, db.max_connections);
    let on_retry = |e: &StoreError, wait: Duration| {
        tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "database unavailable at start; retrying");
    };
    let store = RetryPolicy::from_settings(&settings.worker)
        .run(stop, connect, StoreError::is_transient, on_retry)
        .await
        .map_err(|gave_up| match gave_up {
            GaveUp::Stopped => anyhow::anyhow!("stopped before the database came up"),
            GaveUp::Permanent(e) => anyhow::Error::new(e).context("opening the database"),
        })?;
    Ok(store)
}

/// Follows the adapter registry, when the settings say so, hot-swapping the
/// backend's adapter and reporting it in the metrics.
fn follow_registry<B: Backend + 'static>(
    processor: &Processor<B>,
    initial: Option<AdapterSpec>,
    stop: &CancellationToken,
) -> Option<JoinHandle<()>> {
    let settings = &processor.settings;
    settings.adapters.follow_registry.then(|| {
        let metrics = processor.metrics.clone();
        tokio::spawn(crate::registry::follow_registry(
            processor.store.clone(),
            processor.backend.clone(),
            settings.clone(),
            initial,
            move |id: &str| metrics.set_serving_adapter(id),
            stop.clone(),
        ))
    })
}

/// Waits (bounded) for the results and dead letters still queued in the
/// producer; every request task has ended, so little or nothing is left.
async fn flush(producer: FutureProducer) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || {
        rdkafka::producer::Producer::flush(&producer, Duration::from_secs(5))
    })
    .await
    .context("flush thread")?
    .context("flushing the producer")
}
