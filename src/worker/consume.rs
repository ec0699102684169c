//! The consumer side: subscribing, taking messages while there is room
//! (pausing the partitions when the worker is full), storing each offset
//! once everything before it is finished, and the drain at shutdown.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use super::kafka::{self, header_map};
use super::offsets::{OffsetTracker, Partition};
use super::process::{Incoming, Processor};
use crate::engine::Backend;
use crate::settings::KafkaSettings;
use crate::store::Source;

type Tracker = Arc<Mutex<OffsetTracker>>;

type WorkerConsumer = StreamConsumer<RebalanceContext>;

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

/// Stop fetching at `max` requests in flight, resume at half: slow
/// inference never stops polling, so `max.poll.interval.ms` is safe.
struct Backpressure {
    max: usize,
    paused: bool,
}

impl Backpressure {
    /// Whether to pause (`Some(true)`) or resume (`Some(false)`) now.
    fn update(&mut self, in_flight: usize) -> Option<bool> {
        let change = if !self.paused && in_flight >= self.max {
            Some(true)
        } else if self.paused && in_flight <= self.max / 2 {
            Some(false)
        } else {
            None
        };
        if let Some(pause) = change {
            self.paused = pause;
        }
        change
    }
}

/// The worker's subscription and the requests it has taken.
pub(super) struct Intake<B> {
    consumer: Arc<WorkerConsumer>,
    tracker: Tracker,
    processor: Arc<Processor<B>>,
}

impl<B: Backend + 'static> Intake<B> {
    /// Joins the group and subscribes to the requests and feedback topics.
    /// Offsets are stored by the worker (never automatically) and committed
    /// in the background.
    pub fn subscribe(
        k: &KafkaSettings,
        processor: Arc<Processor<B>>,
        grace: Duration,
    ) -> anyhow::Result<Intake<B>> {
        let tracker: Tracker = Arc::new(Mutex::new(OffsetTracker::default()));
        let consumer: WorkerConsumer = kafka::client_config(k)
            .set("group.id", &k.group_id)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set(
                "session.timeout.ms",
                k.session_timeout.as_millis().to_string(),
            )
            .set(
                "max.poll.interval.ms",
                k.max_poll_interval.as_millis().to_string(),
            )
            .create_with_context(RebalanceContext {
                tracker: tracker.clone(),
                grace,
            })
            .context("creating the consumer")?;
        consumer
            .subscribe(&[&k.requests_topic, &k.feedback_topic])
            .context("subscribing")?;
        tracing::info!(requests = %k.requests_topic, feedback = %k.feedback_topic, group = %k.group_id, "worker consuming");
        Ok(Intake {
            consumer: Arc::new(consumer),
            tracker,
            processor,
        })
    }

    /// Takes messages, each processed on its own task, until `stop`.
    pub async fn run_until(&self, stop: &CancellationToken, max_in_flight: usize) {
        let mut backpressure = Backpressure {
            max: max_in_flight,
            paused: false,
        };
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            // recv() is called even while paused: it serves rebalance callbacks,
            // and a message fetched before the pause took effect is still processed.
            tokio::select! {
                _ = stop.cancelled() => break,
                received = self.consumer.recv() => match received {
                    Ok(m) => self.spawn(incoming(&m)),
                    Err(e) => {
                        tracing::warn!(error = %e, "consume error");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = tick.tick() => {}
            }
            if let Some(pause) = backpressure.update(total_in_flight(&self.tracker)) {
                self.set_paused(pause);
            }
        }
    }

    /// Stops fetching and gives the requests in flight `grace` to finish,
    /// then cancels `abandon`; returns how many were left unfinished (their
    /// offsets stay unstored, so they are redelivered).
    pub async fn drain(&self, grace: Duration, abandon: &CancellationToken) -> usize {
        tracing::info!(
            in_flight = total_in_flight(&self.tracker),
            "stopping: draining in-flight requests"
        );
        self.set_paused(true);
        let deadline = Instant::now() + grace;
        while total_in_flight(&self.tracker) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = total_in_flight(&self.tracker);
        abandon.cancel();
        if left > 0 {
            tracing::warn!(
                left,
                "grace period over; unfinished requests will be redelivered"
            );
            // Let abandoned tasks observe the cancellation before committing.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        left
    }

    /// Commits the stored offsets (none stored is fine).
    pub async fn commit(&self) -> anyhow::Result<()> {
        let c = self.consumer.clone();
        tokio::task::spawn_blocking(move || c.commit_consumer_state(CommitMode::Sync))
            .await
            .context("commit thread")?
            .or_else(|e| match e {
                rdkafka::error::KafkaError::ConsumerCommit(
                    rdkafka::types::RDKafkaErrorCode::NoOffset,
                ) => Ok(()),
                e => Err(e),
            })
            .context("committing offsets")
    }

    fn set_paused(&self, pause: bool) {
        let Ok(assignment) = self.consumer.assignment() else {
            return;
        };
        let result = if pause {
            self.consumer.pause(&assignment)
        } else {
            self.consumer.resume(&assignment)
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, pause, "pause/resume");
        }
    }

    /// Processes one message on its own task; its offset is stored once it
    /// and everything before it in its partition are finished.
    fn spawn(&self, incoming: Incoming) {
        let partition: Partition = (incoming.source.topic.clone(), incoming.source.partition);
        let offset = incoming.source.offset;
        if let Ok(mut t) = self.tracker.lock() {
            t.begin(&partition, offset);
        }
        let metrics = self.processor.metrics.clone();
        metrics.consumed.inc();
        metrics.in_flight.inc();
        let (processor, tracker, consumer) = (
            self.processor.clone(),
            self.tracker.clone(),
            self.consumer.clone(),
        );
        tokio::spawn(async move {
            let started = Instant::now();
            let outcome = processor.handle(incoming).await;
            metrics.observe("total", started.elapsed().as_secs_f64());
            // Abandoned requests stay unfinished in the tracker, so no offset
            // at or after theirs is stored: they are redelivered.
            if outcome.finished() {
                let next = tracker
                    .lock()
                    .ok()
                    .and_then(|mut t| t.finish(&partition, offset));
                if let Some(next) = next {
                    store_offset(&consumer, &partition, next);
                }
            }
            metrics.in_flight.dec();
        });
    }
}

fn store_offset(consumer: &WorkerConsumer, partition: &Partition, next: i64) {
    let mut list = TopicPartitionList::new();
    let stored = list
        .add_partition_offset(&partition.0, partition.1, Offset::Offset(next))
        .and_then(|_| consumer.store_offsets(&list));
    if let Err(e) = stored {
        // Revoked meanwhile: the new owner redelivers; writes are idempotent.
        tracing::debug!(error = %e, "offset not stored");
    }
}

/// The message, owned, so the consumer's buffer is released at once.
fn incoming(m: &BorrowedMessage<'_>) -> Incoming {
    Incoming {
        source: Source {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
        },
        key: m.key().map(<[u8]>::to_vec),
        payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        headers: header_map(m.headers()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backpressure_pauses_when_full_and_resumes_at_half() {
        let mut b = Backpressure {
            max: 8,
            paused: false,
        };
        let changes: Vec<Option<bool>> = [3, 8, 9, 5, 4, 4, 7, 8].map(|n| b.update(n)).into();
        assert_eq!(
            changes,
            [
                None,
                Some(true),
                None,
                None,
                Some(false),
                None,
                None,
                Some(true)
            ]
        );
    }
}
