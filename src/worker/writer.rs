//! Batches verdict inserts: whatever is waiting goes into one transaction.
//! A transient database failure is retried with backoff, never dropped; the
//! callers simply wait (their partitions stay unacknowledged).

use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::health::Check;
use super::metrics::Metrics;
use super::retry::{GaveUp, RetryPolicy};
use crate::store::{NewVerdict, Store, StoreError};

type Reply = oneshot::Sender<Result<String, WriteError>>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    #[error("the database refused the verdict: {0}")]
    Rejected(String),
    #[error("shutting down before the verdict was stored")]
    Cancelled,
}

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<(NewVerdict, Reply)>,
}

impl Writer {
    pub fn spawn(
        store: Store,
        metrics: Metrics,
        batch_max: usize,
        retry: RetryPolicy,
        cancel: CancellationToken,
    ) -> Writer {
        let (tx, rx) = mpsc::channel(batch_max * 2);
        tokio::spawn(run(store, metrics, rx, batch_max, retry, cancel));
        Writer { tx }
    }

    /// Stores a verdict (or finds the one stored first) and returns the result
    /// message to publish.
    pub async fn write(&self, verdict: NewVerdict) -> Result<String, WriteError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((verdict, reply))
            .await
            .map_err(|_| WriteError::Cancelled)?;
        rx.await.map_err(|_| WriteError::Cancelled)?
    }
}

async fn run(
    store: Store,
    metrics: Metrics,
    mut rx: mpsc::Receiver<(NewVerdict, Reply)>,
    batch_max: usize,
    retry: RetryPolicy,
    cancel: CancellationToken,
) {
    let mut batch = Vec::with_capacity(batch_max);
    while rx.recv_many(&mut batch, batch_max).await > 0 {
        let (verdicts, replies): (Vec<NewVerdict>, Vec<Reply>) = batch.drain(..).unzip();
        let results = persist_batch(&store, &metrics, verdicts, &retry, &cancel).await;
        for (result, reply) in results.into_iter().zip(replies) {
            let _ = reply.send(result);
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
        Ok(stored) => {
            metrics.write_batch_size.observe(verdicts.len() as f64);
            results_of(&verdicts, &stored)
        }
        Err(WriteError::Rejected(e)) if verdicts.len() > 1 => {
            tracing::warn!(error = %e, rows = verdicts.len(), "batch refused; writing its rows one by one");
            let mut results = Vec::with_capacity(verdicts.len());
            for v in verdicts {
                let one = [v];
                results.push(
                    match write_with_retry(store, metrics, &one, retry, cancel).await {
                        Ok(stored) => results_of(&one, &stored).remove(0),
                        Err(e) => Err(e),
                    },
                );
            }
            results
        }
        Err(e) => verdicts.iter().map(|_| Err(e.clone())).collect(),
    }
}

/// Each row's stored result message.
fn results_of(
    verdicts: &[NewVerdict],
    stored: &[(Uuid, String)],
) -> Vec<Result<String, WriteError>> {
    verdicts
        .iter()
        .map(|v| {
            let id = v.verdict.request_id;
            stored
                .iter()
                .find(|(sid, _)| *sid == id)
                .map(|(_, r)| r.clone())
                .ok_or_else(|| WriteError::Rejected(format!("{id} missing after insert")))
        })
        .collect()
}

/// Inserts a batch, retrying while the database is unavailable (the worker
/// reports itself unhealthy meanwhile); a refused batch is not retried.
async fn write_with_retry(
    store: &Store,
    metrics: &Metrics,
    verdicts: &[NewVerdict],
    retry: &RetryPolicy,
    cancel: &CancellationToken,
) -> Result<Vec<(Uuid, String)>, WriteError> {
    let insert = || store.insert_verdicts(verdicts);
    let on_retry = |e: &StoreError, wait: std::time::Duration| {
        metrics.health.fail(Check::Database, e.to_string());
        metrics.retries.with_label_values(&["persist"]).inc();
        tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "database unavailable; retrying");
    };
    match retry
        .run(cancel, insert, StoreError::is_transient, on_retry)
        .await
    {
        Ok((new, stored)) => {
            metrics.health.pass(Check::Database);
            metrics.verdicts_written.inc_by(new as u64);
            metrics
                .duplicates
                .inc_by((verdicts.len() - new.min(verdicts.len())) as u64);
            Ok(stored)
        }
        Err(GaveUp::Permanent(e)) => Err(WriteError::Rejected(e.to_string())),
        Err(GaveUp::Stopped) => Err(WriteError::Cancelled),
    }
}
