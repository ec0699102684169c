//! Getting a request's image bytes: inline, over http(s) within the address
//! policy (`policy`, `resolve`, `http`), or from a local file under the base
//! directory (`local`). Transient URL failures are retried a bounded number
//! of times (`Fetcher::fetch_retrying`).

mod error;
mod http;
mod local;
pub mod policy;
mod resolve;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use error::{FetchError, FetchFailed};
pub use policy::{AddressClass, FetchPolicy, Refusal};

use super::request::ImageSource;
use super::retry::{GaveUp, RetryPolicy};
use crate::settings::{ImageSettings, WorkerSettings};
use http::HttpFetcher;
use local::LocalFiles;

#[derive(Clone)]
pub struct Fetcher {
    http: HttpFetcher,
    local: LocalFiles,
    max_bytes: u64,
    max_attempts: u32,
}

impl Fetcher {
    pub fn new(worker: &WorkerSettings, image: &ImageSettings) -> Fetcher {
        Fetcher {
            http: HttpFetcher::new(
                FetchPolicy::from_settings(worker),
                worker.fetch_timeout,
                image.max_bytes,
            ),
            local: LocalFiles::new(&worker.local_paths_dir, image.max_bytes),
            max_bytes: image.max_bytes,
            max_attempts: worker.fetch_max_attempts.max(1),
        }
    }

    /// One attempt.
    pub async fn fetch(&self, source: &ImageSource) -> Result<Vec<u8>, FetchError> {
        match source {
            ImageSource::Inline(bytes) => {
                if bytes.len() as u64 > self.max_bytes {
                    return Err(FetchError::TooLarge {
                        limit: self.max_bytes,
                    });
                }
                Ok(bytes.clone())
            }
            ImageSource::Path(path) => self.local.read(path).await,
            ImageSource::Url(url) => self.http.get(url).await,
        }
    }

    /// Fetches, retrying transient failures with `retry`'s backoff up to
    /// `worker.fetch_max_attempts` attempts in all; each retry is announced
    /// to `on_retry`. A cancelled `stop` ends the fetch, in a wait or in an
    /// attempt (a fetch has no effect to finish), as `GaveUp::Stopped`.
    ///
    /// Bounded retries, then the dead-letter topic, as Kafka Connect's
    /// `errors.retry.timeout` and Vector's HTTP retries do: a source that
    /// stays down must not hold its partition still.
    pub async fn fetch_retrying(
        &self,
        source: &ImageSource,
        retry: &RetryPolicy,
        stop: &CancellationToken,
        on_retry: impl FnMut(&FetchError, Duration),
    ) -> Result<Vec<u8>, GaveUp<FetchFailed>> {
        let attempts = AtomicU32::new(0);
        let attempt = || {
            attempts.fetch_add(1, Ordering::SeqCst);
            self.fetch(source)
        };
        let retryable = |e: &FetchError| {
            e.is_transient() && attempts.load(Ordering::SeqCst) < self.max_attempts
        };
        let fetched = tokio::select! {
            biased;
            _ = stop.cancelled() => return Err(GaveUp::Stopped),
            fetched = retry.run(stop, attempt, retryable, on_retry) => fetched,
        };
        fetched.map_err(|gave_up| match gave_up {
            GaveUp::Stopped => GaveUp::Stopped,
            GaveUp::Permanent(error) => GaveUp::Permanent(FetchFailed {
                error,
                attempts: attempts.load(Ordering::SeqCst),
            }),
        })
    }
}
