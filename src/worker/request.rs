//! The request message (docs/messages.md), parsed into a validated type
//! before anything else runs. Every failure names what is wrong.

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use uuid::Uuid;

pub use crate::domain::request::{ImageSource, Request, Task};

/// The only schema version this worker understands.
pub const SCHEMA_VERSION: u32 = 1;

/// Upper bound on questions per request (each costs generation time).
const MAX_QUESTIONS: usize = 8;
const MAX_QUESTION_CHARS: usize = 2000;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    #[error("not valid JSON: {0}")]
    InvalidJson(String),
    #[error("unsupported schema_version {0} (this worker reads {SCHEMA_VERSION})")]
    SchemaVersion(u64),
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("invalid field `{field}`: {reason}")]
    InvalidField { field: String, reason: String },
}

impl RequestError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> RequestError {
        RequestError::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            RequestError::InvalidJson(_) => "invalid_json",
            RequestError::SchemaVersion(_) => "schema_version",
            RequestError::MissingField(_) => "missing_field",
            RequestError::InvalidField { .. } => "invalid_field",
        }
    }
}

/// The wire shape; every field optional so that a missing one is reported by name.
#[derive(Deserialize)]
struct Wire {
    schema_version: Option<serde_json::Value>,
    request_id: Option<String>,
    image: Option<WireImage>,
    tasks: Option<Vec<Task>>,
    #[serde(default)]
    questions: Vec<String>,
    tenant: Option<String>,
    #[serde(default)]
    metadata: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireImage {
    base64: Option<String>,
    url: Option<String>,
    path: Option<String>,
}

/// Deserializes a message's wire shape. A value of the wrong shape is
/// reported at its path (`image.url`, `tasks[0]`); `whole` names the
/// message itself when the top level is wrong.
pub(super) fn from_json<T: DeserializeOwned>(
    payload: &[u8],
    whole: &str,
) -> Result<T, RequestError> {
    let mut json = serde_json::Deserializer::from_slice(payload);
    let wire = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if !inner.is_data() {
            return RequestError::InvalidJson(inner.to_string());
        }
        let field = if path == "." { whole } else { path.as_str() };
        RequestError::invalid(field, inner.to_string())
    })?;
    // Trailing bytes after the value.
    json.end()
        .map_err(|e| RequestError::InvalidJson(e.to_string()))?;
    Ok(wire)
}

/// A present `schema_version` must be the one this worker reads.
pub(super) fn check_schema_version(version: serde_json::Value) -> Result<(), RequestError> {
    match version.as_u64() {
        Some(v) if v == u64::from(SCHEMA_VERSION) => Ok(()),
        Some(v) => Err(RequestError::SchemaVersion(v)),
        None => Err(RequestError::invalid(
            "schema_version",
            "must be a positive integer",
        )),
    }
}

pub(super) fn parse_request_id(id: Option<String>) -> Result<Uuid, RequestError> {
    let id = id.ok_or(RequestError::MissingField("request_id"))?;
    Uuid::parse_str(&id)
        .map_err(|e| RequestError::invalid("request_id", format!("not a UUID: {e}")))
}

/// Parses and validates one message payload.
pub fn parse_request(payload: &[u8], allow_local_paths: bool) -> Result<Request, RequestError> {
    let wire: Wire = from_json(payload, "message")?;
    check_schema_version(
        wire.schema_version
            .ok_or(RequestError::MissingField("schema_version"))?,
    )?;
    let request_id = parse_request_id(wire.request_id)?;
    let image = parse_image(
        wire.image.ok_or(RequestError::MissingField("image"))?,
        allow_local_paths,
    )?;
    let tasks = wire
        .tasks
        .unwrap_or_else(|| vec![Task::Detection, Task::Classification]);
    if tasks.is_empty() && wire.questions.is_empty() {
        return Err(RequestError::invalid(
            "tasks",
            "nothing to do: no tasks and no questions",
        ));
    }
    if wire.questions.len() > MAX_QUESTIONS {
        return Err(RequestError::invalid(
            "questions",
            format!("at most {MAX_QUESTIONS} questions"),
        ));
    }
    for q in &wire.questions {
        if q.trim().is_empty() || q.chars().count() > MAX_QUESTION_CHARS {
            return Err(RequestError::invalid(
                "questions",
                format!("each question must hold 1..{MAX_QUESTION_CHARS} characters"),
            ));
        }
    }
    let tenant = match wire.tenant {
        Some(t) if t.trim().is_empty() || t.len() > 200 => {
            return Err(RequestError::invalid(
                "tenant",
                "must hold 1..200 characters",
            ))
        }
        other => other,
    };
    reject_nul("questions", wire.questions.iter().map(String::as_str))?;
    reject_nul("tenant", tenant.as_deref())?;
    if has_nul(&wire.metadata) {
        reject_nul("metadata", ["\0"])?;
    }
    Ok(Request {
        request_id,
        image,
        explain: tasks.contains(&Task::Artifacts),
        questions: wire.questions,
        tenant,
        metadata: wire.metadata,
    })
}

/// PostgreSQL TEXT and JSONB cannot hold U+0000, though JSON can: such a
/// value would fail the whole write batch it lands in, so it is refused here,
/// by field, before any work is done.
pub(super) fn reject_nul<'a>(
    field: &str,
    values: impl IntoIterator<Item = &'a str>,
) -> Result<(), RequestError> {
    if values.into_iter().any(|v| v.contains('\0')) {
        return Err(RequestError::invalid(
            field,
            "contains a NUL character (U+0000), which the database cannot store",
        ));
    }
    Ok(())
}

/// Whether any string in a JSON value, object keys included, holds a NUL.
fn has_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(has_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

fn parse_image(image: WireImage, allow_local_paths: bool) -> Result<ImageSource, RequestError> {
    match (image.base64, image.url, image.path) {
        (Some(b64), None, None) => base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map(ImageSource::Inline)
            .map_err(|e| RequestError::invalid("image.base64", e.to_string())),
        (None, Some(url), None) => {
            reject_nul("image.url", [url.as_str()])?;
            let lower = url.to_ascii_lowercase();
            if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                return Err(RequestError::invalid(
                    "image.url",
                    "only http:// and https:// URLs are fetched",
                ));
            }
            Ok(ImageSource::Url(url))
        }
        (None, None, Some(path)) => {
            if !allow_local_paths {
                return Err(RequestError::invalid(
                    "image.path",
                    "local paths are disabled (worker.allow_local_paths = false)",
                ));
            }
            Ok(ImageSource::Path(path))
        }
        _ => Err(RequestError::invalid(
            "image",
            "give exactly one of base64, url or path",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<Request, RequestError> {
        parse_request(v.to_string().as_bytes(), false)
    }

    fn valid() -> serde_json::Value {
        json!({
            "schema_version": 1,
            "request_id": "6f1c3b0a-9d11-4a59-9f4e-2f1c3b0a9d11",
            "image": {"base64": "aGVsbG8="},
            "tenant": "acme",
            "metadata": {"upload": 7}
        })
    }

    #[test]
    fn a_valid_request_parses() {
        let r = parse(valid()).unwrap();
        assert_eq!(r.image, ImageSource::Inline(b"hello".to_vec()));
        assert_eq!(r.tenant.as_deref(), Some("acme"));
        assert!(!r.explain);
        assert_eq!(r.metadata["upload"], 7);
    }

    #[test]
    fn nul_characters_are_refused_by_field() {
        for (field, patch) in [
            ("tenant", json!({"tenant": "ac\u{0}me"})),
            ("questions", json!({"questions": ["why\u{0}?"]})),
            ("metadata", json!({"metadata": {"a": [1, {"b": "x\u{0}"}]}})),
            ("metadata", json!({"metadata": {"k\u{0}": 1}})),
            (
                "image.url",
                json!({"image": {"url": "https://a.test/x\u{0}.png"}}),
            ),
        ] {
            let mut v = valid();
            for (k, val) in patch.as_object().unwrap() {
                v[k] = val.clone();
            }
            match parse(v) {
                Err(RequestError::InvalidField { field: f, reason }) => {
                    assert_eq!(f, field);
                    assert!(reason.contains("NUL"), "{reason}");
                }
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn artifacts_task_asks_for_the_explanation() {
        let mut v = valid();
        v["tasks"] = json!(["detection", "artifacts"]);
        v["questions"] = json!(["Why?"]);
        let r = parse(v).unwrap();
        assert!(r.explain);
        assert_eq!(r.questions, ["Why?"]);
    }

    #[test]
    fn each_defect_has_its_kind() {
        assert_eq!(
            parse_request(b"{not json", false).unwrap_err().kind(),
            "invalid_json"
        );
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (json!({"request_id": "x"}), "missing_field"),
            (
                {
                    let mut v = valid();
                    v["schema_version"] = json!(2);
                    v
                },
                "schema_version",
            ),
            (
                {
                    let mut v = valid();
                    v.as_object_mut().unwrap().remove("request_id");
                    v
                },
                "missing_field",
            ),
            (
                {
                    let mut v = valid();
                    v["request_id"] = json!("nope");
                    v
                },
                "invalid_field",
            ),
            (
                {
                    let mut v = valid();
                    v.as_object_mut().unwrap().remove("image");
                    v
                },
                "missing_field",
            ),
            (
                {
                    let mut v = valid();
                    v["image"] = json!({"url": "ftp://x/y.jpg"});
                    v
                },
                "invalid_field",
            ),
            (
                {
                    let mut v = valid();
                    v["image"] = json!({"path": "/etc/passwd"});
                    v
                },
                "invalid_field",
            ),
            (
                {
                    let mut v = valid();
                    v["image"] = json!({"base64": "!!"});
                    v
                },
                "invalid_field",
            ),
            (
                {
                    let mut v = valid();
                    v["image"] = json!({"base64": "aA==", "url": "http://x"});
                    v
                },
                "invalid_field",
            ),
            (
                {
                    let mut v = valid();
                    v["tasks"] = json!(["dance"]);
                    v
                },
                "invalid_field",
            ),
        ];
        for (v, kind) in cases {
            let err = parse(v.clone()).unwrap_err();
            assert_eq!(err.kind(), kind, "{v} gave {err}");
        }
    }

    #[test]
    fn a_value_of_the_wrong_shape_is_named_by_its_path() {
        let field_of = |v: serde_json::Value| match parse(v) {
            Err(RequestError::InvalidField { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        };
        let mut v = valid();
        v["tasks"] = json!(["detection", "dance"]);
        assert_eq!(field_of(v), "tasks[1]");
        let mut v = valid();
        v["image"] = json!({"url": 5});
        assert_eq!(field_of(v), "image.url");
        let mut v = valid();
        v["request_id"] = json!(7);
        assert_eq!(field_of(v), "request_id");
        assert_eq!(field_of(json!("a string")), "message");
        let trailing = format!("{} x", valid());
        assert_eq!(
            parse_request(trailing.as_bytes(), false)
                .unwrap_err()
                .kind(),
            "invalid_json"
        );
    }

    #[test]
    fn local_paths_only_when_allowed() {
        let mut v = valid();
        v["image"] = json!({"path": "/data/x.jpg"});
        let r = parse_request(v.to_string().as_bytes(), true).unwrap();
        assert_eq!(r.image, ImageSource::Path("/data/x.jpg".into()));
        assert_eq!(r.image.reference(), "file:///data/x.jpg");
    }
}
