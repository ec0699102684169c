//! Image URLs over http(s): one attempt, within `worker.fetch_timeout` and
//! `image.max_bytes`, through the policy at every step: the URL before it
//! is sent, every address a host name resolves to (`resolve`), every
//! redirect hop.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::redirect::{Action, Attempt};
use url::Url;

use super::error::FetchError;
use super::policy::{FetchPolicy, Refusal};
use super::resolve::CheckingResolver;

/// Redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 3;

#[derive(Clone)]
pub struct HttpFetcher {
    client: reqwest::Client,
    policy: Arc<FetchPolicy>,
    max_bytes: u64,
}

impl HttpFetcher {
    pub fn new(policy: FetchPolicy, timeout: Duration, max_bytes: u64) -> HttpFetcher {
        let policy = Arc::new(policy);
        let on_redirect = policy.clone();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A proxy would resolve and connect for us, past every check
            // here: connections go straight to the checked address. (Where
            // egress must go through a proxy, that proxy enforces the
            // policy, as Smokescreen does.)
            .no_proxy()
            // The Referer of a redirect would carry the query (signatures)
            // to the redirect's host.
            .referer(false)
            .dns_resolver(Arc::new(CheckingResolver::new(policy.clone())))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                follow(&on_redirect, attempt)
            }))
            .build()
            // Only a TLS backend that cannot start fails here, and it fails
            // the same way at every start: loudly, before any message.
            .expect("the image fetcher's HTTP client");
        HttpFetcher {
            client,
            policy,
            max_bytes,
        }
    }

    /// Streams the body and stops as soon as it passes the limit. The body
    /// of an error status is never read.
    pub async fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let url = Url::parse(url).map_err(|_| FetchError::Refused(Refusal::InvalidUrl))?;
        self.policy.check_url(&url).map_err(FetchError::Refused)?;
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| FetchError::from_reqwest(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status {
                status: status.as_u16(),
            });
        }
        if let Some(len) = response.content_length() {
            self.check_size(len)?;
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| FetchError::from_reqwest(&e))?;
            self.check_size((body.len() + chunk.len()) as u64)?;
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn check_size(&self, n: u64) -> Result<(), FetchError> {
        if n > self.max_bytes {
            return Err(FetchError::TooLarge {
                limit: self.max_bytes,
            });
        }
        Ok(())
    }
}

/// A redirect is followed only to a URL the policy allows: its scheme, and
/// its host if an IP literal (a host name meets the resolver's check when
/// the client connects to it).
fn follow(policy: &FetchPolicy, attempt: Attempt) -> Action {
    if attempt.previous().len() > MAX_REDIRECTS {
        return attempt.error(Refusal::TooManyRedirects(MAX_REDIRECTS));
    }
    match policy.check_url(attempt.url()) {
        Ok(()) => attempt.follow(),
        Err(refusal) => attempt.error(Refusal::Redirect(Box::new(refusal))),
    }
}
