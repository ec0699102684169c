//! An analysis request once validated: which image, what to do with it, and
//! what the caller attached. The wire format and its parser are the worker's
//! (`worker::request`); this is what every stage after parsing works with.

use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    /// Bytes carried in the message.
    Inline(Vec<u8>),
    /// Fetched over http(s) with a timeout and a byte limit.
    Url(String),
    /// A local file, when `worker.allow_local_paths` is set.
    Path(String),
}

impl ImageSource {
    /// What is stored as the image's source reference.
    pub fn reference(&self) -> String {
        match self {
            ImageSource::Inline(_) => "inline".into(),
            ImageSource::Url(u) => u.clone(),
            ImageSource::Path(p) => format!("file://{p}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Detection,
    Classification,
    Artifacts,
}

/// A request that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub request_id: Uuid,
    pub image: ImageSource,
    /// True when the caller asked for the artifact description explicitly.
    pub explain: bool,
    pub questions: Vec<String>,
    pub tenant: Option<String>,
    pub metadata: serde_json::Value,
}
