//! The one task that talks to the verdict tables in batches. Whatever is
//! waiting goes into one statement: verdict inserts (one transaction per
//! batch), duplicate lookups (one `= ANY($1)` query per batch) and delivery
//! counts (one upsert per batch). Every queue is bounded. A transient
//! database failure of a write or a count is retried with backoff, never
//! dropped; the callers simply wait (their partitions stay unacknowledged).

use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::health::Check;
use super::metrics::Metrics;
use super::retry::{GaveUp, RetryPolicy};
use crate::store::{NewVerdict, Source, Store, StoreError, StoredResult, Written};

type Reply<T> = oneshot::Sender<Result<T, WriteError>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("the database refused the verdict: {0}")]
    Rejected(String),
    /// The request id is stored for another request (another hash).
    #[error("{0}")]
    Conflict(String),
    #[error("shutting down before the verdict was stored")]
    Cancelled,
}

/// What waits for a read: a delivery to count, or a request id to look up.
enum Read {
    Note(Source, Reply<i32>),
    Lookup(Uuid, Reply<Option<StoredResult>>),
}

/// How long delivery counts are kept after a message was last delivered. A
/// crash loop redelivers within minutes (the group's session timeout, then
/// the next worker), so an hour counts it; a longer memory would only turn
/// a deliberate replay (offsets reset) into false `crash_loop`s, and grow
/// the table by every message consumed meanwhile.
pub const DELIVERY_RETENTION: Duration = Duration::from_secs(3600);
const PRUNE_EVERY: Duration = Duration::from_secs(600);

#[derive(Clone)]
pub struct Writer {
    writes: mpsc::Sender<(NewVerdict, Reply<String>)>,
    reads: mpsc::Sender<Read>,
}

impl Writer {
    pub fn spawn(
        store: Store,
        metrics: Metrics,
        batch_max: usize,
        retry: RetryPolicy,
        cancel: CancellationToken,
    ) -> Writer {
        let (writes, write_rx) = mpsc::channel(batch_max * 2);
        let (reads, read_rx) = mpsc::channel(batch_max * 2);
        let task = Task {
            store,
            metrics,
            batch_max,
            retry,
            cancel,
        };
        tokio::spawn(async move { task.run(write_rx, read_rx).await });
        Writer { writes, reads }
    }

    /// Whether the writer task has ended (it only ends with the worker).
    pub fn is_closed(&self) -> bool {
        self.writes.is_closed() || self.reads.is_closed()
    }

    /// Stores a verdict (or finds the one stored first) and returns the
    /// result message to publish; `Conflict` when its request id is stored
    /// for another request.
    pub async fn write(&self, verdict: NewVerdict) -> Result<String, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.writes
            .send((verdict, reply))
            .await
            .map_err(|_| WriteError::Cancelled)?;
        rx.await.map_err(|_| WriteError::Cancelled)?
    }

    /// What is stored under `request_id`, if anything. Not retried: a
    /// failed lookup is no loss, since the insert decides again.
    pub async fn lookup(&self, request_id: Uuid) -> Result<Option<StoredResult>, WriteError> {
        self.read(|reply| Read::Lookup(request_id, reply)).await
    }

    /// Counts one more delivery of `source`; returns its deliveries so far,
    /// this one included. Retried while the database is down.
    pub async fn note_delivery(&self, source: Source) -> Result<i32, WriteError> {
        self.read(|reply| Read::Note(source, reply)).await
    }

    async fn read<T>(&self, job: impl FnOnce(Reply<T>) -> Read) -> Result<T, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.reads
            .send(job(reply))
            .await
            .map_err(|_| WriteError::Cancelled)?;
        rx.await.map_err(|_| WriteError::Cancelled)?
    }
}

struct Task {
    store: Store,
    metrics: Metrics,
    batch_max: usize,
    retry: RetryPolicy,
    cancel: CancellationToken,
}

impl Task {
    /// Writes and reads are batched side by side, so a lookup never waits
    /// behind a write transaction; the task ends when every `Writer` is gone.
    async fn run(
        self,
        writes: mpsc::Receiver<(NewVerdict, Reply<String>)>,
        reads: mpsc::Receiver<Read>,
    ) {
        tokio::select! {
            _ = async { tokio::join!(self.write_loop(writes), self.read_loop(reads)) } => {}
            _ = self.prune_loop() => {}
        }
    }

    async fn write_loop(&self, mut rx: mpsc::Receiver<(NewVerdict, Reply<String>)>) {
        let mut batch = Vec::with_capacity(self.batch_max);
        while rx.recv_many(&mut batch, self.batch_max).await > 0 {
            let (verdicts, replies): (Vec<NewVerdict>, Vec<_>) = batch.drain(..).unzip();
            let results = persist_batch(
                &self.store,
                &self.metrics,
                verdicts,
                &self.retry,
                &self.cancel,
            )
            .await;
            for (result, reply) in results.into_iter().zip(replies) {
                let _ = reply.send(result);
            }
        }
    }

    async fn read_loop(&self, mut rx: mpsc::Receiver<Read>) {
        let mut batch = Vec::with_capacity(self.batch_max);
        while rx.recv_many(&mut batch, self.batch_max).await > 0 {
            let (mut notes, mut lookups) = (Vec::new(), Vec::new());
            for read in batch.drain(..) {
                match read {
                    Read::Note(source, reply) => notes.push((source, reply)),
                    Read::Lookup(id, reply) => lookups.push((id, reply)),
                }
            }
            tokio::join!(self.note_batch(notes), self.lookup_batch(lookups));
        }
    }

    async fn note_batch(&self, notes: Vec<(Source, Reply<i32>)>) {
        if notes.is_empty() {
            return;
        }
        let (sources, replies): (Vec<Source>, Vec<_>) = notes.into_iter().unzip();
        let note = || self.store.note_deliveries(&sources);
        let noted = self
            .retry
            .run(
                &self.cancel,
                note,
                StoreError::is_transient,
                on_db_retry(&self.metrics, "note_delivery"),
            )
            .await;
        match noted {
            Ok(attempts) => {
                self.metrics.health.pass(Check::Database);
                for (n, reply) in attempts.into_iter().zip(replies) {
                    let _ = reply.send(Ok(n));
                }
            }
            Err(gave_up) => {
                let e = write_error(gave_up);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    async fn lookup_batch(&self, lookups: Vec<(Uuid, Reply<Option<StoredResult>>)>) {
        if lookups.is_empty() {
            return;
        }
        let ids: Vec<Uuid> = lookups.iter().map(|(id, _)| *id).collect();
        match self.store.find_results(&ids).await {
            Ok(found) => {
                for (id, reply) in lookups {
                    let _ = reply.send(Ok(found.get(&id).cloned()));
                }
            }
            Err(e) => {
                for (_, reply) in lookups {
                    let _ = reply.send(Err(WriteError::Rejected(e.to_string())));
                }
            }
        }
    }

    /// Forgets delivery counts no longer needed. Every worker prunes; the
    /// deletes are idempotent and paged.
    async fn prune_loop(&self) {
        let mut every = tokio::time::interval(PRUNE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match self
                .store
                .forget_deliveries_before(DELIVERY_RETENTION)
                .await
            {
                Ok(n) => tracing::debug!(deleted = n, "pruned delivery counts"),
                Err(e) => tracing::warn!(error = %e, "pruning delivery counts failed; next time"),
            }
        }
    }
}

/// Stores a batch in one transaction and answers for each row, in order, with
/// the result message stored for it. One bad row must not reject the rows
/// batched with it: like Kafka Connect's per-record error handling, a batch
/// the database refuses is retried row by row, and only the rows it refuses
/// again fail.
pub async fn persist_batch(
    store: &Store,
    metrics: &Metrics,
    verdicts: Vec<NewVerdict>,
    retry: &RetryPolicy,
    cancel: &CancellationToken,
) -> Vec<Result<String, WriteError>> {
    let started = Instant::now();
    let outcome = write_with_retry(store, metrics, &verdicts, retry, cancel).await;
    metrics.observe("persist", started.elapsed().as_secs_f64());
    match outcome {
        Ok(written) => {
            metrics.write_batch_size.observe(verdicts.len() as f64);
            results_of(&verdicts, written)
        }
        Err(WriteError::Rejected(e)) if verdicts.len() > 1 => {
            tracing::warn!(error = %e, rows = verdicts.len(), "batch refused; writing its rows one by one");
            let mut results = Vec::with_capacity(verdicts.len());
            for v in verdicts {
                let one = [v];
                results.push(
                    match write_with_retry(store, metrics, &one, retry, cancel).await {
                        Ok(written) => results_of(&one, written).remove(0),
                        Err(e) => Err(e),
                    },
                );
            }
            results
        }
        Err(e) => verdicts.iter().map(|_| Err(e.clone())).collect(),
    }
}

/// Each row's result message: its own when it was stored now, the stored
/// one when its request was stored before, a conflict when its request id
/// was stored for another request (the loser of two racing requests).
fn results_of(verdicts: &[NewVerdict], written: Vec<Written>) -> Vec<Result<String, WriteError>> {
    verdicts
        .iter()
        .zip(written)
        .map(|(v, w)| match w {
            Written::Inserted => Ok(v.result.clone()),
            Written::Existing(stored) if stored.answers(&v.request_sha256) => Ok(stored.result),
            Written::Existing(stored) => Err(conflict(
                v.verdict.request_id,
                stored.request_sha256.as_deref(),
                &v.request_sha256,
            )),
        })
        .collect()
}

/// The error of a request whose id is stored for another request.
pub fn conflict(request_id: Uuid, stored: Option<&str>, this: &str) -> WriteError {
    WriteError::Conflict(format!(
        "request_id {request_id} is already stored for a different request \
         (request hash {} there, {this} here); its verdict is not republished",
        stored.unwrap_or("unknown")
    ))
}

/// Inserts a batch, retrying while the database is unavailable (the worker
/// reports itself unhealthy meanwhile); a refused batch is not retried.
async fn write_with_retry(
    store: &Store,
    metrics: &Metrics,
    verdicts: &[NewVerdict],
    retry: &RetryPolicy,
    cancel: &CancellationToken,
) -> Result<Vec<Written>, WriteError> {
    let insert = || store.insert_verdicts(verdicts);
    let on_retry = on_db_retry(metrics, "persist");
    match retry
        .run(cancel, insert, StoreError::is_transient, on_retry)
        .await
    {
        Ok(written) => {
            metrics.health.pass(Check::Database);
            let new = written.iter().filter(|w| **w == Written::Inserted).count();
            let duplicates = verdicts
                .iter()
                .zip(&written)
                .filter(|(v, w)| matches!(w, Written::Existing(s) if s.answers(&v.request_sha256)))
                .count();
            metrics.verdicts_written.inc_by(new as u64);
            metrics.duplicates.inc_by(duplicates as u64);
            Ok(written)
        }
        Err(gave_up) => Err(write_error(gave_up)),
    }
}

/// A database call of `stage` that failed transiently and will be retried:
/// counted, logged, and `/healthz` says the database is down meanwhile.
fn on_db_retry<'a>(
    metrics: &'a Metrics,
    stage: &'static str,
) -> impl FnMut(&StoreError, Duration) + 'a {
    move |e, wait| {
        metrics.health.fail(Check::Database, e.to_string());
        metrics.retries.with_label_values(&[stage]).inc();
        tracing::warn!(error = %e, stage, retry_in_ms = wait.as_millis() as u64, "database unavailable; retrying");
    }
}

fn write_error(gave_up: GaveUp<StoreError>) -> WriteError {
    match gave_up {
        GaveUp::Permanent(e) => WriteError::Rejected(e.to_string()),
        GaveUp::Stopped => WriteError::Cancelled,
    }
}
