//! The consumer's own thread. Like Vector's Kafka source, the consumer is
//! polled on a dedicated thread, not on the async runtime: the revocation
//! callback runs inside `poll` and must block until the revoked partitions'
//! requests are finished, which on a runtime thread would stall the very
//! tasks it waits for (on a 1-CPU pod, always). Every consumer call that
//! changes state (pause, resume, commit, close) happens on this thread.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::IntGaugeVec;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::super::health::{Check, Health};
use super::super::kafka::header_map;
use super::super::offsets::{OffsetTracker, Partition};
use super::super::process::Incoming;
use super::pause::Backpressure;
use crate::store::Source;

pub(super) type WorkerConsumer = BaseConsumer<RebalanceContext>;

/// Fetching is healthy again after this long without a consume error.
const CONSUMER_HEALED_AFTER: Duration = Duration::from_secs(10);

/// State shared by the poll thread, its callbacks and the request tasks.
pub(super) struct Shared {
    pub tracker: Mutex<OffsetTracker>,
    /// Offsets to store, by partition, left by finished tasks.
    pub pending: Mutex<BTreeMap<Partition, i64>>,
    /// Requests taken and not yet ended (the backpressure count). Kept apart
    /// from the tracker, which forgets revoked partitions while their tasks
    /// may still run: the in-flight bound must hold across rebalances.
    pub running: AtomicUsize,
    /// Set by the poll thread; read by the assignment callback.
    pub paused: AtomicBool,
    /// Shutdown: stop fetching for good.
    pub draining: AtomicBool,
    /// Every task has ended: revocations no longer wait, the thread commits
    /// and closes the consumer.
    pub close: AtomicBool,
    pub grace: Duration,
    pub health: Health,
}

impl Shared {
    fn running_in(&self, partitions: &[Partition]) -> usize {
        self.tracker
            .lock()
            .map(|t| t.running_in(partitions))
            .unwrap_or(0)
    }
}

/// Drains revoked partitions before the group moves them elsewhere, and
/// applies the worker's pause state to every partition it is assigned.
pub(super) struct RebalanceContext {
    pub shared: Arc<Shared>,
    /// `dfa_consumer_lag`, set from librdkafka's statistics.
    pub lag: IntGaugeVec,
}

impl ClientContext for RebalanceContext {
    fn stats(&self, stats: Statistics) {
        let rows = stats.topics.values().flat_map(|t| {
            t.partitions.values().map(|p| PartitionLag {
                topic: &t.topic,
                partition: p.partition,
                fetch_state: &p.fetch_state,
                lag: p.consumer_lag_stored,
            })
        });
        report_lag(&self.lag, rows);
    }
}

/// What librdkafka's statistics say of one partition.
pub(super) struct PartitionLag<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub fetch_state: &'a str,
    /// Behind the end, from the offset stored for commit; -1 while unknown.
    pub lag: i64,
}

/// Replaces the lag series with the partitions this consumer fetches now,
/// so a revoked partition's last figure does not linger. librdkafka lists
/// every partition of a subscribed topic (and an internal -1) but fetches
/// only the assigned ones.
pub(super) fn report_lag<'a>(gauge: &IntGaugeVec, rows: impl Iterator<Item = PartitionLag<'a>>) {
    gauge.reset();
    for row in rows {
        if row.partition < 0 || row.lag < 0 || row.fetch_state == "none" {
            continue;
        }
        gauge
            .with_label_values(&[row.topic, &row.partition.to_string()])
            .set(row.lag);
    }
}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let revoked = partitions_of(list);
        tracing::info!(partitions = revoked.len(), "partitions revoked");
        let shared = &self.shared;
        // At close every task has ended already: nothing to wait for.
        if !shared.close.load(Ordering::SeqCst) {
            let deadline = Instant::now() + shared.grace;
            // Shutdown (close) ends the wait: its own drain has run.
            while Instant::now() < deadline
                && !shared.close.load(Ordering::SeqCst)
                && shared.running_in(&revoked) > 0
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            let left = shared.running_in(&revoked);
            if left > 0 {
                tracing::warn!(
                    left,
                    "partitions revoked with requests unfinished; they will be redelivered"
                );
            }
        }
        store_pending(consumer, shared);
        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %e, "commit on revocation");
        }
        if let Ok(mut t) = shared.tracker.lock() {
            for p in &revoked {
                t.forget(p);
            }
        }
        if let Ok(mut pending) = shared.pending.lock() {
            pending.retain(|p, _| !revoked.contains(p));
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Assign(list) = rebalance else {
            return;
        };
        let paused = self.shared.paused.load(Ordering::SeqCst);
        tracing::info!(partitions = list.count(), paused, "partitions assigned");
        // Pause state lives on librdkafka's partition objects and outlives a
        // revocation: set it explicitly either way.
        let applied = if paused {
            consumer.pause(list)
        } else {
            consumer.resume(list)
        };
        if let Err(e) = applied {
            tracing::warn!(error = %e, paused, "cannot apply pause state to assigned partitions");
        }
    }
}

fn partitions_of(list: &TopicPartitionList) -> Vec<Partition> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// The poll loop: takes messages while there is room and hands them to the
/// async side; at `close`, commits and leaves the group.
pub(super) fn run(
    consumer: WorkerConsumer,
    shared: Arc<Shared>,
    max_in_flight: usize,
    tx: mpsc::Sender<Incoming>,
) {
    let mut backpressure = Backpressure::new(max_in_flight);
    let mut errors = ConsumeErrors::default();
    let mut last_error: Option<Instant> = None;
    while !shared.close.load(Ordering::SeqCst) {
        if shared.draining.load(Ordering::SeqCst) {
            backpressure.drain();
        }
        if let Some(pause) = backpressure.update(shared.running.load(Ordering::SeqCst)) {
            shared.paused.store(pause, Ordering::SeqCst);
            set_paused(&consumer, pause);
        }
        store_pending(&consumer, &shared);
        match consumer.poll(Duration::from_millis(50)) {
            None => {
                // An idle topic brings no message to clear a past error.
                if last_error.is_some_and(|t| t.elapsed() > CONSUMER_HEALED_AFTER) {
                    shared.health.pass(Check::Consumer);
                    last_error = None;
                }
            }
            Some(Ok(m)) => {
                shared.health.pass(Check::Consumer);
                let incoming = incoming(&m);
                drop(m);
                let partition = (incoming.source.topic.clone(), incoming.source.partition);
                if let Ok(mut t) = shared.tracker.lock() {
                    t.begin(&partition, incoming.source.offset);
                }
                shared.running.fetch_add(1, Ordering::SeqCst);
                // Bounded: at most max_in_flight (+ what was fetched before a
                // pause took effect) wait here.
                if tx.blocking_send(incoming).is_err() {
                    shared.running.fetch_sub(1, Ordering::SeqCst);
                    break;
                }
            }
            Some(Err(e)) => {
                errors.report(&e, &shared.health);
                last_error = Some(Instant::now());
            }
        }
    }
    store_pending(&consumer, &shared);
    close(consumer);
}

/// Stores the offsets finished tasks left (the auto-commit sends them).
fn store_pending(consumer: &WorkerConsumer, shared: &Shared) {
    let pending = match shared.pending.lock() {
        Ok(mut p) if !p.is_empty() => std::mem::take(&mut *p),
        _ => return,
    };
    let mut list = TopicPartitionList::new();
    for ((topic, partition), next) in &pending {
        if let Err(e) = list.add_partition_offset(topic, *partition, Offset::Offset(*next)) {
            tracing::debug!(error = %e, "offset not stored");
        }
    }
    if let Err(e) = consumer.store_offsets(&list) {
        // Revoked meanwhile: the new owner redelivers; writes are idempotent.
        tracing::debug!(error = %e, "offsets not stored");
    }
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

/// Commits what was stored, then leaves the group (dropping the consumer
/// closes it, serving the final revocation, which no longer waits).
fn close(consumer: WorkerConsumer) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::error!(error = %e, "committing offsets at shutdown"),
    }
    drop(consumer);
    tracing::info!("left the consumer group");
}

/// Consume errors, each kind logged once at warn and then quietly: a missing
/// topic is reported by the topic check, not once per poll.
#[derive(Default)]
struct ConsumeErrors {
    seen: HashSet<String>,
}

impl ConsumeErrors {
    fn report(&mut self, e: &KafkaError, health: &Health) {
        let unknown_topic = matches!(
            e,
            KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition)
                | KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopic)
        );
        if !unknown_topic {
            health.fail(Check::Consumer, e.to_string());
        }
        if self.seen.insert(e.to_string()) {
            tracing::warn!(error = %e, "consume error (repeats are logged at debug)");
        } else {
            tracing::debug!(error = %e, "consume error");
        }
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
    use prometheus::Opts;

    fn row<'a>(topic: &'a str, partition: i32, fetch_state: &'a str, lag: i64) -> PartitionLag<'a> {
        PartitionLag {
            topic,
            partition,
            fetch_state,
            lag,
        }
    }

    fn series(gauge: &IntGaugeVec) -> Vec<(String, String, i64)> {
        use prometheus::core::Collector;
        let mut out: Vec<_> = gauge
            .collect()
            .iter()
            .flat_map(|f| f.get_metric().to_vec())
            .map(|m| {
                let label = |name: &str| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == name)
                        .map(|l| l.value().to_string())
                        .unwrap_or_default()
                };
                (
                    label("topic"),
                    label("partition"),
                    m.get_gauge().get_value() as i64,
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn only_fetched_partitions_with_a_known_lag_are_reported_and_revoked_ones_go() {
        let gauge = IntGaugeVec::new(Opts::new("lag", "lag"), &["topic", "partition"]).unwrap();
        report_lag(
            &gauge,
            [
                row("dfa.requests", 0, "active", 12),
                row("dfa.requests", 1, "none", 40),
                row("dfa.requests", 2, "active", -1),
                row("dfa.requests", -1, "none", 0),
                row("dfa.feedback", 0, "active", 0),
            ]
            .into_iter(),
        );
        assert_eq!(
            series(&gauge),
            vec![
                ("dfa.feedback".to_string(), "0".to_string(), 0),
                ("dfa.requests".to_string(), "0".to_string(), 12),
            ]
        );
        // Partition 0 revoked, 1 assigned: the next report replaces the set.
        report_lag(&gauge, [row("dfa.requests", 1, "active", 3)].into_iter());
        assert_eq!(
            series(&gauge),
            vec![("dfa.requests".to_string(), "1".to_string(), 3)]
        );
    }
}
