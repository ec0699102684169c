//! The consumer side: a dedicated poll thread takes messages while there is
//! room (pausing the partitions when the worker is full), each request runs
//! as a task in one `JoinSet`, and each offset is stored once everything
//! before it is finished. Shutdown drains once: stop fetching, give the
//! running requests the grace period, abandon the rest, commit, leave.

mod pause;
mod poll;
pub(super) mod topics;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::FutureExt;
use rdkafka::consumer::Consumer;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::health::Health;
use super::kafka;
use super::offsets::{OffsetTracker, Partition};
use super::process::{Incoming, Outcome, Processor};
use crate::engine::Backend;
use crate::settings::KafkaSettings;
use poll::{RebalanceContext, Shared, WorkerConsumer};

/// How long abandoned requests get to notice the cancellation and end.
const ABANDON_BOUND: Duration = Duration::from_secs(5);
/// How long committing and leaving the group may take at shutdown.
const CLOSE_BOUND: Duration = Duration::from_secs(10);

/// The worker's subscription and the requests it has taken.
pub(super) struct Intake<B> {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Incoming>,
    poll_thread: Option<std::thread::JoinHandle<()>>,
    processor: Arc<Processor<B>>,
    tasks: JoinSet<()>,
}

impl<B: Backend + 'static> Intake<B> {
    /// Joins the group and subscribes to the requests and feedback topics.
    /// Offsets are stored by the worker (never automatically) and committed
    /// in the background.
    pub fn subscribe(
        k: &KafkaSettings,
        processor: Arc<Processor<B>>,
        grace: Duration,
        max_in_flight: usize,
        health: Health,
    ) -> anyhow::Result<Intake<B>> {
        let shared = Arc::new(Shared {
            tracker: Mutex::new(OffsetTracker::default()),
            pending: Mutex::default(),
            running: AtomicUsize::new(0),
            paused: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            close: AtomicBool::new(false),
            grace,
            health,
        });
        let mut config = kafka::client_config(k);
        // Feeds dfa_consumer_lag (RebalanceContext::stats); an interval in
        // kafka.options wins.
        if !k.options.contains_key("statistics.interval.ms") {
            config.set("statistics.interval.ms", "5000");
        }
        let consumer: WorkerConsumer = config
            .set("group.id", &k.group_id)
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // A topic created after the subscription (or given partitions)
            // is noticed at the next metadata refresh: 10 s, not 5 min.
            .set("topic.metadata.refresh.interval.ms", "10000")
            .set(
                "session.timeout.ms",
                k.session_timeout.as_millis().to_string(),
            )
            .set(
                "max.poll.interval.ms",
                k.max_poll_interval.as_millis().to_string(),
            )
            .create_with_context(RebalanceContext {
                shared: shared.clone(),
                lag: processor.metrics.consumer_lag.clone(),
            })
            .context("creating the consumer")?;
        consumer
            .subscribe(&[&k.requests_topic, &k.feedback_topic])
            .context("subscribing")?;
        tracing::info!(requests = %k.requests_topic, feedback = %k.feedback_topic, group = %k.group_id, "worker consuming");
        let (tx, rx) = mpsc::channel(max_in_flight.max(1));
        let thread_shared = shared.clone();
        let poll_thread = std::thread::Builder::new()
            .name("dfa-consumer".into())
            .spawn(move || poll::run(consumer, thread_shared, max_in_flight, tx))
            .context("starting the consumer thread")?;
        Ok(Intake {
            shared,
            rx,
            poll_thread: Some(poll_thread),
            processor,
            tasks: JoinSet::new(),
        })
    }

    /// Runs each message taken as its own task until `stop` (or a fatal
    /// failure, which the caller reads from the processor).
    pub async fn run_until(&mut self, stop: &CancellationToken) {
        let fatal = self.processor.fatal.clone();
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = fatal.raised() => break,
                received = self.rx.recv() => match received {
                    Some(incoming) => self.spawn(incoming),
                    None => {
                        tracing::error!("the consumer thread ended");
                        break;
                    }
                },
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => log_join(joined),
            }
        }
    }

    /// Stops fetching and gives the requests running `grace` to finish,
    /// then cancels `abandon` and waits (bounded) for them to end; returns
    /// how many were left unfinished (their offsets stay unstored, so they
    /// are redelivered).
    pub async fn drain(&mut self, grace: Duration, abandon: &CancellationToken) -> usize {
        tracing::info!(
            in_flight = self.shared.running.load(Ordering::SeqCst),
            "stopping: draining in-flight requests"
        );
        self.shared.draining.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + grace;
        self.join_until(deadline).await;
        let left = self.tasks.len();
        abandon.cancel();
        if left > 0 {
            tracing::warn!(
                left,
                "grace period over; unfinished requests will be redelivered"
            );
            self.join_until(tokio::time::Instant::now() + ABANDON_BOUND)
                .await;
            if !self.tasks.is_empty() {
                tracing::warn!(
                    tasks = self.tasks.len(),
                    "requests still running after cancellation; aborting them"
                );
                self.tasks.shutdown().await;
            }
        }
        left
    }

    /// Waits for the tasks until `deadline`; messages still arriving from
    /// the poll thread (fetched before the pause) are not started.
    async fn join_until(&mut self, deadline: tokio::time::Instant) {
        let mut open = true;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return,
                received = self.rx.recv(), if open => match received {
                    Some(incoming) => {
                        self.shared.abandon(&incoming);
                        self.shared.running.fetch_sub(1, Ordering::SeqCst);
                    }
                    None => open = false,
                },
                joined = self.tasks.join_next() => match joined {
                    Some(joined) => log_join(joined),
                    None => return,
                },
            }
        }
    }

    /// Commits what was stored and leaves the group, on the poll thread.
    pub async fn close(mut self) -> anyhow::Result<()> {
        self.shared.close.store(true, Ordering::SeqCst);
        // Unblocks the poll thread if it waits to hand over a message.
        self.rx.close();
        let thread = self.poll_thread.take();
        let joined = tokio::time::timeout(
            CLOSE_BOUND,
            tokio::task::spawn_blocking(move || thread.map(|t| t.join())),
        )
        .await
        .map_err(|_| anyhow::anyhow!("the consumer did not close within {CLOSE_BOUND:?}"))?;
        joined
            .context("joining the consumer thread")?
            .transpose()
            .map_err(|_| anyhow::anyhow!("the consumer thread panicked"))?;
        Ok(())
    }

    /// Processes one message on its own task; its offset is stored once it
    /// and everything before it in its partition are finished. A panic in
    /// processing is caught and the message dead-lettered, so its partition
    /// moves on (Kafka Connect's `errors.tolerance = all` for a bug).
    fn spawn(&mut self, incoming: Incoming) {
        let (processor, shared) = (self.processor.clone(), self.shared.clone());
        processor.metrics.consumed.inc();
        processor.metrics.in_flight.inc();
        self.tasks.spawn(async move {
            let mut running = Running {
                shared: shared.clone(),
                processor: processor.clone(),
                unended: Some(incoming.clone_source()),
            };
            let started = Instant::now();
            let outcome = match AssertUnwindSafe(processor.handle(&incoming))
                .catch_unwind()
                .await
            {
                Ok(outcome) => outcome,
                Err(panic) => {
                    let reason = panic_message(panic.as_ref());
                    processor.handle_panic(&incoming, &reason).await
                }
            };
            processor
                .metrics
                .observe("total", started.elapsed().as_secs_f64());
            // Abandoned requests stay unfinished in the tracker, so no offset
            // at or after theirs is stored: they are redelivered.
            if outcome == Outcome::Abandoned {
                shared.abandon(&incoming);
            } else {
                shared.finish(&partition_of(&incoming), incoming.source.offset);
            }
            running.unended = None;
        });
    }
}

/// Ends a request's count however its task ends. A task that ends without
/// finishing or abandoning its message (aborted at shutdown, or a panic in
/// the panic handler itself) leaves it abandoned, so revocations do not wait
/// for it; outside shutdown that is a bug the worker must not live with.
struct Running<B> {
    shared: Arc<Shared>,
    processor: Arc<Processor<B>>,
    unended: Option<(Partition, i64)>,
}

impl<B> Drop for Running<B> {
    fn drop(&mut self) {
        if let Some((partition, offset)) = self.unended.take() {
            if let Ok(mut t) = self.shared.tracker.lock() {
                t.abandon(&partition, offset);
            }
            if !self.processor.cancel.is_cancelled() {
                self.processor.fatal.raise(format!(
                    "a request task died at {partition:?} offset {offset}"
                ));
            }
        }
        self.shared.running.fetch_sub(1, Ordering::SeqCst);
        self.processor.metrics.in_flight.dec();
    }
}

impl Incoming {
    fn clone_source(&self) -> (Partition, i64) {
        (partition_of(self), self.source.offset)
    }
}

impl Shared {
    /// Marks a message finished; the offset to store is handed to the poll
    /// thread, which owns every consumer call.
    fn finish(&self, partition: &Partition, offset: i64) {
        // The tracker's lock is held while the offset is handed over, so two
        // tasks finishing in turn hand over their offsets in the same order:
        // a stored offset never moves backwards.
        let Ok(mut tracker) = self.tracker.lock() else {
            return;
        };
        if let (Some(next), Ok(mut pending)) =
            (tracker.finish(partition, offset), self.pending.lock())
        {
            pending.insert(partition.clone(), next);
        }
    }

    /// A message taken but given up on (or never started): not running, and
    /// its offset holds the partition back.
    fn abandon(&self, incoming: &Incoming) {
        if let Ok(mut t) = self.tracker.lock() {
            t.abandon(&partition_of(incoming), incoming.source.offset);
        }
    }
}

fn partition_of(incoming: &Incoming) -> Partition {
    (incoming.source.topic.clone(), incoming.source.partition)
}

fn log_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(e) = joined {
        if !e.is_cancelled() {
            tracing::error!(error = %e, "request task failed");
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
