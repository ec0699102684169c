//! Why an image could not be had, typed so the worker can tell what a
//! retry may cure (timeouts, connection and DNS failures, 5xx, 429) from
//! what it cannot (refusals, other 4xx, oversize, unreadable files).
//!
//! Reasons end up in dead letters, the rejections table and logs, so they
//! never carry the URL (it may hold credentials or signatures), a response
//! body, or an address a host name resolved to.

use super::policy::Refusal;
use super::resolve::ResolveError;
use crate::worker::retry::Transient;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL, a redirect, or an address it resolved to broke a rule.
    #[error("image URL refused: {0}")]
    Refused(Refusal),
    #[error("image URL timed out")]
    Timeout,
    #[error("could not resolve the image URL's host")]
    Dns,
    #[error("could not connect to the image URL's host")]
    Connect,
    #[error("image URL answered HTTP {status}")]
    Status { status: u16 },
    #[error("the image download broke off")]
    Body,
    #[error("image larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// A local path outside `worker.local_paths_dir`, not a regular file,
    /// or changed while read.
    #[error("local image refused: {0}")]
    FileRefused(&'static str),
    #[error("cannot read the local image: {0}")]
    File(String),
}

impl FetchError {
    /// The dead-letter kind.
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::Refused(_) => "fetch_refused",
            FetchError::Timeout
            | FetchError::Dns
            | FetchError::Connect
            | FetchError::Status { .. }
            | FetchError::Body => "fetch_failed",
            FetchError::TooLarge { .. } => "too_large",
            FetchError::FileRefused(_) => "file_refused",
            FetchError::File(_) => "file_unreadable",
        }
    }

    /// Whether another attempt may succeed: the host was slow, unreachable
    /// or overloaded (5xx, 429). Any other status is the answer.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Timeout | FetchError::Dns | FetchError::Connect | FetchError::Body => true,
            FetchError::Status { status } => *status >= 500 || *status == 429,
            FetchError::Refused(_)
            | FetchError::TooLarge { .. }
            | FetchError::FileRefused(_)
            | FetchError::File(_) => false,
        }
    }

    /// Classifies a client error by what caused it, never by its text
    /// (reqwest's messages name the URL).
    pub(super) fn from_reqwest(e: &reqwest::Error) -> FetchError {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = cause {
            if let Some(resolve) = err.downcast_ref::<ResolveError>() {
                return match resolve {
                    ResolveError::Lookup => FetchError::Dns,
                    ResolveError::Refused(r) => FetchError::Refused(r.clone()),
                };
            }
            if let Some(refusal) = err.downcast_ref::<Refusal>() {
                return FetchError::Refused(refusal.clone());
            }
            cause = err.source();
        }
        if e.is_timeout() {
            FetchError::Timeout
        } else if e.is_builder() {
            FetchError::Refused(Refusal::InvalidUrl)
        } else if e.is_redirect() {
            FetchError::Refused(Refusal::TooManyRedirects(super::http::MAX_REDIRECTS))
        } else if e.is_body() || e.is_decode() {
            FetchError::Body
        } else {
            // Connect errors, and a connection lost while sending.
            FetchError::Connect
        }
    }
}

impl Transient for FetchError {
    fn is_transient(&self) -> bool {
        FetchError::is_transient(self)
    }
}

/// A fetch that ended without the image, with the attempts it took.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}{}", attempts_note(self))]
pub struct FetchFailed {
    pub error: FetchError,
    pub attempts: u32,
}

impl FetchFailed {
    pub fn kind(&self) -> &'static str {
        self.error.kind()
    }
}

/// `fetch_failed` reasons say how often the fetch was tried.
fn attempts_note(f: &FetchFailed) -> String {
    match (f.error.kind(), f.attempts) {
        ("fetch_failed", 1) => " (1 attempt)".into(),
        ("fetch_failed", n) => format!(" (gave up after {n} attempts)"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_are_the_ones_a_retry_may_cure() {
        let transient = [
            FetchError::Timeout,
            FetchError::Dns,
            FetchError::Connect,
            FetchError::Body,
            FetchError::Status { status: 500 },
            FetchError::Status { status: 503 },
            FetchError::Status { status: 429 },
        ];
        for e in transient {
            assert!(e.is_transient(), "{e:?}");
            assert_eq!(e.kind(), "fetch_failed");
        }
        let permanent = [
            (FetchError::Status { status: 404 }, "fetch_failed"),
            (FetchError::Status { status: 403 }, "fetch_failed"),
            (FetchError::Status { status: 304 }, "fetch_failed"),
            (FetchError::Refused(Refusal::InvalidUrl), "fetch_refused"),
            (FetchError::TooLarge { limit: 1 }, "too_large"),
            (FetchError::FileRefused("x"), "file_refused"),
            (FetchError::File("x".into()), "file_unreadable"),
        ];
        for (e, kind) in permanent {
            assert!(!e.is_transient(), "{e:?}");
            assert_eq!(e.kind(), kind);
        }
    }

    #[test]
    fn fetch_failed_reasons_count_the_attempts() {
        let failed = |error, attempts| FetchFailed { error, attempts }.to_string();
        assert_eq!(
            failed(FetchError::Status { status: 503 }, 4),
            "image URL answered HTTP 503 (gave up after 4 attempts)"
        );
        assert_eq!(
            failed(FetchError::Status { status: 404 }, 1),
            "image URL answered HTTP 404 (1 attempt)"
        );
        assert_eq!(
            failed(FetchError::TooLarge { limit: 9 }, 1),
            "image larger than 9 bytes"
        );
    }
}
