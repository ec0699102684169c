//! Body and query extractors whose rejections are `ApiError`s naming the
//! field at fault (`{"error": "bad_request", "field": "limit", …}`), instead
//! of axum's plain-text ones.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body; a malformed one is a 400 naming the JSON path.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad("body", e.body_text()))?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON body, naming the path of the first bad field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        ApiError::bad(field_of(&path, &message, "body"), message)
    })
}

/// The field an error is about: its path, or, for errors serde reports at
/// the top (missing, unknown or duplicate field `x`), the name it quotes;
/// `whole` when neither names one (truncated JSON, a body of another type).
fn field_of(path: &str, message: &str, whole: &str) -> String {
    let top = path == "." || path == "?";
    let quoted = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))
        .or_else(|| message.strip_prefix("duplicate field `"))
        .and_then(|rest| rest.split('`').next());
    match (top, quoted) {
        (true, Some(name)) => name.to_string(),
        (true, None) => whole.to_string(),
        (false, _) => path.to_string(),
    }
}

/// A verdict's request id from a path. Anything that is not a UUID names
/// no verdict: 404, as an unknown id, so the routes answer alike for both.
pub fn verdict_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("verdict"))
}

/// Query parameters; a bad value is a 400 naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(ApiQuery)
    }
}

/// Parses a query string, naming the parameter of the first bad value.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        ApiError::bad(field_of(&path, &message, "query"), message)
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Q {
        limit: Option<u32>,
        label: Option<String>,
    }

    fn field(e: ApiError) -> String {
        match e {
            ApiError::BadRequest { field, .. } => field,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn a_bad_query_value_names_its_parameter() {
        assert_eq!(field(parse_query::<Q>("limit=ten").unwrap_err()), "limit");
        assert_eq!(field(parse_query::<Q>("limitt=1").unwrap_err()), "limitt");
        let q: Q = parse_query("limit=5&label=fake").unwrap();
        assert_eq!(q.limit, Some(5));
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct B {
        question: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        n: u8,
    }

    #[test]
    fn a_bad_json_body_names_its_path() {
        assert_eq!(field(parse_json::<B>(b"{").unwrap_err()), "body");
        assert_eq!(
            field(parse_json::<B>(br#"{"question": "q", "#).unwrap_err()),
            "body"
        );
        assert_eq!(field(parse_json::<B>(b"[]").unwrap_err()), "body");
        assert_eq!(field(parse_json::<B>(b"{}").unwrap_err()), "question");
        assert_eq!(
            field(parse_json::<B>(br#"{"question": 3}"#).unwrap_err()),
            "question"
        );
        assert_eq!(
            field(parse_json::<B>(br#"{"question": "q", "inner": {"n": 300}}"#).unwrap_err()),
            "inner.n"
        );
    }
}
