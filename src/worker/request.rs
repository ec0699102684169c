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
        // Characters, as documented, not UTF-8 bytes.
        Some(t) if t.trim().is_empty() || t.chars().count() > 200 => {
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

/// Version of the canonical form `request_sha256` hashes. Verdicts store
/// the hash, so changing the form makes every stored request look like
/// another one: bump this only with a migration that clears stored hashes.
const CANONICAL_FORM: u32 = 1;

/// The sha256 (hex) of the canonical request: what decides its answer and
/// what its result echoes. A `request_id` reused with a different hash is
/// another request (`request_id_conflict`), never given the first one's
/// verdict; with the same hash it is a redelivery or a resend (a duplicate).
///
/// Hashed, as one JSON object with the keys of every object sorted and no
/// whitespace:
/// - `tenant`: echoed (null when absent);
/// - `image`: `{"inline_sha256": …}` (the decoded bytes' sha256),
///   `{"url": …}` or `{"path": …}` as given. A URL keeps its query (a
///   parameter may name another image; a signature is high-entropy) but
///   loses its credentials and fragment (`url_identity`): they name no other
///   image, and a password must not be guessable from a stored hash;
/// - `questions`, in order (each answer sees the ones before it);
/// - `explain`: whether the artifacts task was asked for (detection and
///   classification are always done: the rest of `tasks` changes nothing);
/// - `metadata`: echoed, canonicalised the same way;
/// - `v`: `CANONICAL_FORM`.
///
/// Not hashed: `request_id` (the key itself), `schema_version` (only one is
/// accepted), key order and whitespace, the base64 text beyond the bytes it
/// decodes to. Numbers count as serde_json writes them, so `1` and `1.0`
/// differ: they are echoed differently.
///
/// CPU work over an inline image's bytes: call it off the async threads.
pub fn request_sha256(request: &Request) -> String {
    let inline = inline_image_sha256(request);
    request_sha256_given(request, inline.as_deref())
}

/// The sha256 of an inline image's bytes (None for URLs and paths): the
/// worker keeps it, so the image is hashed once per request.
pub fn inline_image_sha256(request: &Request) -> Option<String> {
    match &request.image {
        ImageSource::Inline(bytes) => Some(crate::domain::sha256_hex(bytes)),
        ImageSource::Url(_) | ImageSource::Path(_) => None,
    }
}

/// `request_sha256`, with the inline image's sha256 already computed.
pub fn request_sha256_given(request: &Request, inline_image_sha256: Option<&str>) -> String {
    crate::domain::sha256_hex(canonical_form(request, inline_image_sha256).as_bytes())
}

fn canonical_form(request: &Request, inline_image_sha256: Option<&str>) -> String {
    let image = match &request.image {
        ImageSource::Inline(_) => serde_json::json!({ "inline_sha256": inline_image_sha256 }),
        ImageSource::Url(url) => serde_json::json!({ "url": url_identity(url) }),
        ImageSource::Path(path) => serde_json::json!({ "path": path }),
    };
    let form = serde_json::json!({
        "v": CANONICAL_FORM,
        "tenant": request.tenant,
        "image": image,
        "questions": request.questions,
        "explain": request.explain,
        "metadata": request.metadata,
    });
    let mut out = String::new();
    write_canonical(&form, &mut out);
    out
}

/// What of a URL names the image: all but `user:password@` and `#fragment`
/// (never sent to the server). Text that does not parse is taken whole.
fn url_identity(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.has_host() => {
            // Cannot fail for a URL with a host.
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// JSON with every object's keys sorted, whatever order the map keeps
/// (serde_json's `preserve_order` feature, if any crate turns it on, would
/// keep the sender's). Depth is bounded by the parser's recursion limit.
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
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
    fn the_canonical_form_is_pinned() {
        // Stored hashes are of this form: a change here makes every stored
        // verdict conflict with its own redeliveries (see CANONICAL_FORM).
        let r = parse(valid()).unwrap();
        assert_eq!(
            canonical_form(&r, inline_image_sha256(&r).as_deref()),
            format!(
                r#"{{"explain":false,"image":{{"inline_sha256":"{}"}},"metadata":{{"upload":7}},"questions":[],"tenant":"acme","v":1}}"#,
                crate::domain::sha256_hex(b"hello")
            )
        );
    }

    #[test]
    fn the_request_hash_ignores_key_order_whitespace_and_the_id() {
        let hash =
            |payload: &str| request_sha256(&parse_request(payload.as_bytes(), false).unwrap());
        let a = hash(
            r#"{"schema_version":1,"request_id":"6f1c3b0a-9d11-4a59-9f4e-2f1c3b0a9d11","image":{"base64":"aGVsbG8="},"tenant":"acme","metadata":{"a":1,"b":{"x":[1,{"p":2,"q":3}],"y":null}}}"#,
        );
        let reordered = hash(
            r#"{ "metadata": {"b": {"y": null, "x": [1, {"q": 3, "p": 2}]}, "a": 1},
                 "tenant": "acme", "image": {"base64": " aGVsbG8= "},
                 "tasks": ["classification", "detection"],
                 "request_id": "00000000-0000-4000-8000-000000000001", "schema_version": 1 }"#,
        );
        assert_eq!(a, reordered);
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn the_request_hash_changes_with_what_decides_or_echoes_the_answer() {
        let base = parse(valid()).unwrap();
        let h = request_sha256(&base);
        let changed = |f: &dyn Fn(&mut Request)| {
            let mut r = base.clone();
            f(&mut r);
            request_sha256(&r)
        };
        let variants = [
            changed(&|r| r.tenant = Some("globex".into())),
            changed(&|r| r.tenant = None),
            changed(&|r| r.image = ImageSource::Inline(b"hellO".to_vec())),
            changed(&|r| r.image = ImageSource::Url("https://a.test/x.png".into())),
            changed(&|r| r.image = ImageSource::Url("https://a.test/x.png?v=2".into())),
            changed(&|r| r.image = ImageSource::Path("/data/x.png".into())),
            changed(&|r| r.questions = vec!["Why?".into()]),
            changed(&|r| r.explain = true),
            changed(&|r| r.metadata = json!({"upload": 8})),
            changed(&|r| r.metadata = json!({"upload": 7, "more": true})),
        ];
        let distinct: std::collections::HashSet<&String> = variants.iter().collect();
        assert_eq!(distinct.len(), variants.len(), "{variants:?}");
        assert!(!distinct.contains(&h));
        let url = |u: &str| changed(&|r| r.image = ImageSource::Url(u.into()));
        assert_eq!(
            url("https://user:secret@a.test/x.png?v=2#top"),
            url("https://a.test/x.png?v=2"),
            "credentials and fragment name no other image"
        );
        let two = changed(&|r| r.questions = vec!["a?".into(), "b?".into()]);
        let swapped = changed(&|r| r.questions = vec!["b?".into(), "a?".into()]);
        assert_ne!(two, swapped, "question order changes the answers");
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
