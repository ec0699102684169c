//! Getting a request's image bytes: inline, over http(s) with a timeout and
//! a byte limit, or from a local file when allowed.

use std::time::Duration;

use futures::StreamExt;

use super::request::ImageSource;

#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("cannot fetch {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("image larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("cannot read {path}: {reason}")]
    File { path: String, reason: String },
}

impl FetchError {
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::Unreachable { .. } | FetchError::Status { .. } => "fetch_failed",
            FetchError::TooLarge { .. } => "too_large",
            FetchError::File { .. } => "file_unreadable",
        }
    }
}

#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    max_bytes: u64,
}

impl Fetcher {
    pub fn new(timeout: Duration, max_bytes: u64) -> Fetcher {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .unwrap_or_default();
        Fetcher { client, max_bytes }
    }

    pub async fn fetch(&self, source: &ImageSource) -> Result<Vec<u8>, FetchError> {
        match source {
            ImageSource::Inline(bytes) => {
                self.check_size(bytes.len() as u64)?;
                Ok(bytes.clone())
            }
            ImageSource::Path(path) => {
                let file_err = |e: std::io::Error| FetchError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                };
                let meta = tokio::fs::metadata(path).await.map_err(file_err)?;
                self.check_size(meta.len())?;
                tokio::fs::read(path).await.map_err(file_err)
            }
            ImageSource::Url(url) => self.get(url).await,
        }
    }

    fn check_size(&self, n: u64) -> Result<(), FetchError> {
        if n > self.max_bytes {
            return Err(FetchError::TooLarge {
                limit: self.max_bytes,
            });
        }
        Ok(())
    }

    /// Streams the body and stops as soon as it passes the limit.
    async fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let unreachable = |e: reqwest::Error| FetchError::Unreachable {
            url: url.to_string(),
            reason: e.to_string(),
        };
        let response = self.client.get(url).send().await.map_err(unreachable)?;
        let status = response.status();
        if !status.is_success() {
            return Err(FetchError::Status {
                url: url.to_string(),
                status: status.as_u16(),
            });
        }
        if let Some(len) = response.content_length() {
            self.check_size(len)?;
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(unreachable)?;
            self.check_size((body.len() + chunk.len()) as u64)?;
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}
