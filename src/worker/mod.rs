//! `dfa worker`: Kafka requests → engine → Postgres verdicts + results topic.
//!
//! At-least-once: an offset is stored only after its request's verdict is
//! durable and published (or the message is dead-lettered), in order per
//! partition. Effects are idempotent by `request_id`, so redelivery after a
//! crash yields one row and an identical result message.

pub mod adapters;
pub mod feedback;
pub mod fetch;
pub mod kafka;
pub mod metrics;
pub mod offsets;
pub mod process;
pub mod request;
pub mod retry;
pub mod trace;
pub mod writer;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::engine::Backend;
use crate::settings::Settings;
use crate::store::{Source, Store};
use fetch::Fetcher;
use kafka::{header_map, Publisher};
use metrics::Metrics;
use offsets::{OffsetTracker, Partition};
use process::{Incoming, Processor};
use retry::Backoff;
use writer::Writer;

type Tracker = Arc<Mutex<OffsetTracker>>;

/// Drains revoked partitions before the group moves them elsewhere.
struct RebalanceContext {
    tracker: Tracker,
    grace: Duration,
}

impl ClientContext for RebalanceContext {}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let revoked: Vec<Partition> = list
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline && in_flight_of(&self.tracker, &revoked) > 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        let left = in_flight_of(&self.tracker, &revoked);
        if left > 0 {
            tracing::warn!(
                left,
                "partitions revoked with requests unfinished; they will be redelivered"
            );
        }
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %e, "commit on revocation");
        }
        if let Ok(mut t) = self.tracker.lock() {
            for p in &revoked {
                t.forget(p);
            }
        }
    }
}

fn in_flight_of(tracker: &Tracker, partitions: &[Partition]) -> usize {
    tracker
        .lock()
        .map(|t| partitions.iter().map(|p| t.in_flight(Some(p))).sum())
        .unwrap_or(0)
}

fn total_in_flight(tracker: &Tracker) -> usize {
    tracker.lock().map(|t| t.in_flight(None)).unwrap_or(0)
}

type WorkerConsumer = StreamConsumer<RebalanceContext>;

/// Connects to Postgres, retrying while it is unavailable.
async fn connect_store(
    settings: &Settings,
    backoff: Backoff,
    stop: &CancellationToken,
) -> anyhow::Result<Store> {
    let mut delay = backoff.first();
    loop {
        match Store::connect(&settings.database.url, settings.database.max_connections).await {
            Ok(store) => return Ok(store),
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "database unavailable at start; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.cancelled() => anyhow::bail!("stopped before the database came up"),
                }
                delay = backoff.next(delay);
            }
            Err(e) => return Err(e).context("connecting to the database"),
        }
    }
}

/// Runs until `stop` is cancelled, then drains and commits; the backend
/// serves `model.adapter` until the registry names one.
pub async fn run<B: Backend + 'static>(
    settings: Settings,
    backend: Arc<B>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let initial =
        crate::model_files::adapter_spec(&settings.model.adapter, settings.model.adapter_scale);
    run_serving(settings, backend, initial, stop).await
}

/// As `run`, for a backend started with `initial`: the adapter served while
/// the registry has none active.
pub async fn run_serving<B: Backend + 'static>(
    settings: Settings,
    backend: Arc<B>,
    initial: Option<crate::engine::AdapterSpec>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let w = &settings.worker;
    let backoff = Backoff::new(
        Duration::from_millis(w.retry_initial_ms),
        Duration::from_millis(w.retry_max_ms),
    );
    let metrics = Metrics::new();
    let addr = w.metrics_addr.parse().context("worker.metrics_addr")?;
    let bound = metrics::serve(addr, metrics.clone())
        .await
        .context("binding the metrics endpoint")?;
    tracing::info!(%bound, "serving /healthz and /metrics");

    let store = connect_store(&settings, backoff, &stop).await?;
    if settings.database.migrate_on_start {
        store.migrate().await.context("running migrations")?;
    }
    // Cancelled only when the shutdown grace period is over: in-flight work
    // then gives up and its offsets stay unstored.
    let abandon = CancellationToken::new();
    let producer = kafka::producer(&settings.kafka).context("creating the producer")?;
    let writer = Writer::spawn(
        store.clone(),
        metrics.clone(),
        w.write_batch_max,
        backoff,
        abandon.clone(),
    );
    let publisher = Publisher::new(
        producer.clone(),
        &settings.kafka,
        backoff,
        metrics.clone(),
        abandon.clone(),
    );
    let processor = Arc::new(Processor {
        backend,
        store,
        writer,
        publisher,
        fetcher: Fetcher::new(
            Duration::from_millis(w.fetch_timeout_ms),
            settings.image.max_bytes,
        ),
        images: crate::image_store::ImageStore::new(&settings.image_store.dir),
        metrics: metrics.clone(),
        settings: settings.clone(),
        cancel: abandon.clone(),
    });
    let follower = settings.adapters.follow_registry.then(|| {
        tokio::spawn(adapters::follow_registry(
            processor.store.clone(),
            processor.backend.clone(),
            settings.clone(),
            initial,
            metrics.clone(),
            stop.clone(),
        ))
    });

    let tracker: Tracker = Arc::new(Mutex::new(OffsetTracker::default()));
    let grace = Duration::from_millis(w.shutdown_grace_ms);
    let k = &settings.kafka;
    let consumer: Arc<WorkerConsumer> = Arc::new(
        kafka::client_config(k)
            .set("group.id", &k.group_id)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", k.session_timeout_ms.to_string())
            .set("max.poll.interval.ms", k.max_poll_interval_ms.to_string())
            .create_with_context(RebalanceContext {
                tracker: tracker.clone(),
                grace,
            })
            .context("creating the consumer")?,
    );
    consumer
        .subscribe(&[&k.requests_topic, &k.feedback_topic])
        .context("subscribing")?;
    tracing::info!(requests = %k.requests_topic, feedback = %k.feedback_topic, group = %k.group_id, "worker consuming");

    let max_in_flight = w.max_in_flight;
    let mut paused = false;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        // recv() is called even while paused: it serves rebalance callbacks,
        // and a message fetched before the pause took effect is still processed.
        tokio::select! {
            _ = stop.cancelled() => break,
            received = consumer.recv() => match received {
                Ok(m) => {
                    let incoming = Incoming {
                        source: Source { topic: m.topic().to_string(), partition: m.partition(), offset: m.offset() },
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                        headers: header_map(m.headers()),
                    };
                    drop(m);
                    spawn_request(incoming, &processor, &tracker, &consumer, &metrics);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "consume error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = tick.tick() => {}
        }
        // Backpressure: stop fetching while the worker is full; slow inference
        // never stops the polling above, so max.poll.interval.ms is safe.
        let n = total_in_flight(&tracker);
        if !paused && n >= max_in_flight {
            set_paused(&consumer, true);
            paused = true;
        } else if paused && n <= max_in_flight / 2 {
            set_paused(&consumer, false);
            paused = false;
        }
    }

    tracing::info!(
        in_flight = total_in_flight(&tracker),
        "stopping: draining in-flight requests"
    );
    set_paused(&consumer, true);
    let deadline = Instant::now() + grace;
    while total_in_flight(&tracker) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = total_in_flight(&tracker);
    abandon.cancel();
    if left > 0 {
        tracing::warn!(
            left,
            "grace period over; unfinished requests will be redelivered"
        );
        // Let abandoned tasks observe the cancellation before committing.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let c = consumer.clone();
    tokio::task::spawn_blocking(move || c.commit_consumer_state(CommitMode::Sync))
        .await
        .context("commit thread")?
        .or_else(|e| match e {
            rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            ) => Ok(()),
            e => Err(e),
        })
        .context("committing offsets")?;
    let p = producer.clone();
    tokio::task::spawn_blocking(move || {
        rdkafka::producer::Producer::flush(&p, Duration::from_secs(10))
    })
    .await
    .context("flush thread")?
    .context("flushing the producer")?;
    if let Some(f) = follower {
        f.abort();
    }
    tracing::info!("worker stopped");
    Ok(())
}

fn set_paused(consumer: &WorkerConsumer, pause: bool) {
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    let result = if pause {
        consumer.pause(&assignment)
    } else {
        consumer.resume(&assignment)
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, pause, "pause/resume");
    }
}

fn spawn_request<B: Backend + 'static>(
    incoming: Incoming,
    processor: &Arc<Processor<B>>,
    tracker: &Tracker,
    consumer: &Arc<WorkerConsumer>,
    metrics: &Metrics,
) {
    let partition: Partition = (incoming.source.topic.clone(), incoming.source.partition);
    let offset = incoming.source.offset;
    if let Ok(mut t) = tracker.lock() {
        t.begin(&partition, offset);
    }
    metrics.consumed.inc();
    metrics.in_flight.inc();
    let (processor, tracker, consumer, metrics) = (
        processor.clone(),
        tracker.clone(),
        consumer.clone(),
        metrics.clone(),
    );
    tokio::spawn(async move {
        let started = Instant::now();
        let outcome = processor.handle(incoming).await;
        metrics.observe("total", started.elapsed().as_secs_f64());
        if outcome.finished() {
            let next = tracker
                .lock()
                .ok()
                .and_then(|mut t| t.finish(&partition, offset));
            if let Some(next) = next {
                let mut list = TopicPartitionList::new();
                let stored = list
                    .add_partition_offset(&partition.0, partition.1, Offset::Offset(next))
                    .and_then(|_| consumer.store_offsets(&list));
                if let Err(e) = stored {
                    // Revoked meanwhile: the new owner redelivers; writes are idempotent.
                    tracing::debug!(error = %e, "offset not stored");
                }
            }
        }
        // Abandoned requests stay unfinished in the tracker, so no offset at
        // or after theirs is stored: they are redelivered.
        metrics.in_flight.dec();
    });
}
