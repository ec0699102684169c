//! The one retry policy for transient failures (database or broker down,
//! image store unwritable): exponential backoff with jitter (`backon`),
//! every wait within `worker.retry_initial` … `worker.retry_max`, and
//! no limit on attempts: only shutdown gives up.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use tokio_util::sync::CancellationToken;

use crate::settings::WorkerSettings;

/// Failures a retry can cure (an outage), as opposed to bad input.
pub trait Transient {
    fn is_transient(&self) -> bool;
}

impl Transient for crate::store::StoreError {
    fn is_transient(&self) -> bool {
        crate::store::StoreError::is_transient(self)
    }
}

/// Image store failures are storage outages (disk full, volume gone): work
/// pauses until the store is back rather than dropping requests.
impl Transient for crate::images::ImageStoreError {
    fn is_transient(&self) -> bool {
        true
    }
}

/// Why a retried call ended without a value.
#[derive(Debug, PartialEq, Eq)]
pub enum GaveUp<E> {
    /// A failure retrying cannot cure.
    Permanent(E),
    /// Shutdown came while waiting for the next attempt.
    Stopped,
}

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    initial: Duration,
    max: Duration,
}

impl RetryPolicy {
    pub fn new(initial: Duration, max: Duration) -> RetryPolicy {
        RetryPolicy {
            initial,
            max: max.max(initial),
        }
    }

    pub fn from_settings(w: &WorkerSettings) -> RetryPolicy {
        RetryPolicy::new(w.retry_initial, w.retry_max)
    }

    /// The waits between attempts: doubling from `initial`, each with up to
    /// as much again of jitter (so workers that failed together spread
    /// out), never more than `max`.
    pub fn waits(&self) -> impl Iterator<Item = Duration> + Send + Sync + Unpin {
        let max = self.max;
        ExponentialBuilder::new()
            .with_min_delay(self.initial)
            .with_max_delay(max)
            .with_jitter()
            .without_max_times()
            .build()
            .map(move |wait| wait.min(max))
    }

    /// Runs `call` until it succeeds or fails in a way `retryable` rejects.
    /// Each retry is announced to `on_retry` with its error and wait. A
    /// cancelled `stop` ends a wait, never an attempt in progress.
    pub async fn run<T, E, F, Fut>(
        &self,
        stop: &CancellationToken,
        call: F,
        retryable: impl FnMut(&E) -> bool,
        on_retry: impl FnMut(&E, Duration),
    ) -> Result<T, GaveUp<E>>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        // Set by the sleeper when shutdown interrupts a wait; the retry
        // future is then parked in that wait, so dropping it drops no attempt.
        let stopped_waiting = CancellationToken::new();
        let sleeper = {
            let (stop, stopped_waiting) = (stop.clone(), stopped_waiting.clone());
            move |wait: Duration| {
                let (stop, stopped_waiting) = (stop.clone(), stopped_waiting.clone());
                async move {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stop.cancelled() => {
                            stopped_waiting.cancel();
                            std::future::pending::<()>().await;
                        }
                    }
                }
            }
        };
        let attempts = call
            .retry(self.waits())
            .sleep(sleeper)
            .when(retryable)
            .notify(on_retry);
        tokio::select! {
            biased;
            _ = stopped_waiting.cancelled() => Err(GaveUp::Stopped),
            result = attempts => result.map_err(GaveUp::Permanent),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn waits_grow_from_initial_and_stay_within_the_bounds() {
        let policy = RetryPolicy::new(ms(100), ms(350));
        for _ in 0..50 {
            let waits: Vec<Duration> = policy.waits().take(8).collect();
            assert!(
                waits.iter().all(|w| (ms(100)..=ms(350)).contains(w)),
                "{waits:?}"
            );
            assert!(
                waits[0] < ms(200),
                "first wait is initial plus jitter: {waits:?}"
            );
            assert_eq!(waits[7], ms(350), "capped at the maximum: {waits:?}");
        }
        let spread: std::collections::HashSet<Duration> = (0..20)
            .map(|_| policy.waits().next().unwrap_or_default())
            .collect();
        assert!(spread.len() > 1, "jitter spreads the first wait");
    }

    #[derive(Debug, PartialEq)]
    enum Failure {
        Outage,
        Refused,
    }

    /// A call that fails with `failures` in order, then succeeds.
    fn scripted(
        failures: Vec<Failure>,
    ) -> (
        Arc<AtomicUsize>,
        impl FnMut() -> std::future::Ready<Result<usize, Failure>>,
    ) {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let mut failures = failures.into_iter();
        let call = move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            std::future::ready(failures.next().map_or(Ok(n), Err))
        };
        (calls, call)
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let policy = RetryPolicy::new(ms(1), ms(2));
        let (calls, call) = scripted(vec![Failure::Outage, Failure::Outage]);
        let mut announced = Vec::new();
        let result = policy
            .run(
                &CancellationToken::new(),
                call,
                |e| *e == Failure::Outage,
                |e: &Failure, wait| announced.push((format!("{e:?}"), wait)),
            )
            .await;
        assert_eq!(result, Ok(3));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(announced.len(), 2, "each retry is announced: {announced:?}");
    }

    #[tokio::test]
    async fn a_permanent_failure_ends_at_once() {
        let policy = RetryPolicy::new(ms(1), ms(2));
        let (calls, call) = scripted(vec![Failure::Outage, Failure::Refused]);
        let result = policy
            .run(
                &CancellationToken::new(),
                call,
                |e| *e == Failure::Outage,
                |_, _| {},
            )
            .await;
        assert_eq!(result, Err(GaveUp::Permanent(Failure::Refused)));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn shutdown_ends_a_wait() {
        let policy = RetryPolicy::new(Duration::from_secs(3600), Duration::from_secs(3600));
        let stop = CancellationToken::new();
        let (calls, call) = scripted(vec![Failure::Outage]);
        let canceller = stop.clone();
        let result = policy
            .run(&stop, call, |_| true, move |_, _| canceller.cancel())
            .await;
        assert_eq!(result, Err(GaveUp::Stopped));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "no attempt after the stop");
    }

    #[tokio::test]
    async fn shutdown_lets_an_attempt_in_progress_finish() {
        let policy = RetryPolicy::new(ms(1), ms(2));
        let stop = CancellationToken::new();
        let canceller = stop.clone();
        let call = move || {
            let canceller = canceller.clone();
            async move {
                canceller.cancel();
                tokio::task::yield_now().await;
                Ok::<_, Failure>("stored")
            }
        };
        let result = policy.run(&stop, call, |_| true, |_, _| {}).await;
        assert_eq!(result, Ok("stored"));
    }
}
