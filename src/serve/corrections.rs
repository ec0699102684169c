//! Corrections over HTTP: a reviewer's correction of a stored verdict,
//! checked with the worker's own rules (`worker::feedback::parse_feedback`),
//! signed (`dfa-signature`, when `feedback.signing_key` is set) and published
//! to `kafka.feedback_topic`, where workers store it. 202 only once the
//! broker has acknowledged it; the reviewer and the time are the server's.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SubsecRound, Utc};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ArrayBuilder, Object, ObjectBuilder, Type};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::parse_json;
use super::state::App;
use crate::domain::access::Permission;
use crate::domain::signature::{sign, SIGNATURE_HEADER};
use crate::domain::{Artifact, ForgeryType, Label};
use crate::worker::feedback::parse_feedback;
use crate::worker::request::RequestError;

/// How long a correction may wait for the broker's acknowledgement before
/// the API answers 503. The producer may still deliver it later; a
/// resubmission is harmless (the same reviewer's later correction
/// supersedes the earlier one).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new().routes(routes!(correct_verdict))
}

/// What a reviewer sends. `reviewer` and `created_at` are not among the
/// fields: they are the token's name and the server's clock.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectionBody {
    /// What the face really is.
    #[schema(schema_with = label_schema)]
    pub label: Label,
    /// Only with `fake` (described in `forgery_type_schema`).
    #[schema(schema_with = forgery_type_schema)]
    pub forgery_type: Option<ForgeryType>,
    /// Only with `fake`: at most 32 `{region, text}`.
    #[schema(schema_with = artifacts_schema)]
    pub artifacts: Option<Vec<Artifact>>,
    /// For humans (at most 4000 characters); stored, not trained on.
    pub note: Option<String>,
}

/// The feedback message as published (docs/messages.md), byte for byte the
/// 202's body.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishedCorrection {
    pub schema_version: u32,
    pub request_id: Uuid,
    /// The token's name.
    pub reviewer: String,
    #[schema(schema_with = label_schema)]
    pub label: Label,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = forgery_type_schema)]
    pub forgery_type: Option<ForgeryType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = artifacts_schema)]
    pub artifacts: Option<Vec<Artifact>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When the server accepted it (microseconds, as the database keeps it).
    pub created_at: DateTime<Utc>,
}

/// Publishes a correction of a verdict to the feedback topic, where the
/// workers store it (asynchronously, hence 202).
#[utoipa::path(post, path = "/api/verdicts/{request_id}/corrections", tag = "corrections",
    params(("request_id" = Uuid, Path, description = "the verdict's request id")),
    request_body = CorrectionBody,
    responses(
        (status = 202, body = PublishedCorrection, description = "acknowledged by the broker"),
        (status = 400, body = ErrorBody, description = "a bad or unknown field, named in `field`"),
        (status = 404, body = ErrorBody, description = "no such verdict, or another tenant's"),
        (status = 503, body = ErrorBody, description = "the broker did not take it; submit again"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn correct_verdict(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Permission::Correct)?;
    let (request_id, _) = caller.visible_verdict(&app, &request_id).await?;
    let body = parse_body(&body)?;
    let payload = payload(request_id, caller.name(), body, Utc::now())?;
    // The worker's rules, on the very bytes it will read.
    parse_feedback(&payload, Utc::now(), app.settings.worker.feedback_max_skew).map_err(refusal)?;
    publish(&app, request_id, &payload).await?;
    tracing::info!(%request_id, reviewer = caller.name(), "correction published");
    Ok((
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        payload,
    )
        .into_response())
}

/// The feedback message for `body`, by `reviewer`, dated `now`.
fn payload(
    request_id: Uuid,
    reviewer: &str,
    body: CorrectionBody,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, ApiError> {
    let message = PublishedCorrection {
        schema_version: 1,
        request_id,
        reviewer: reviewer.to_string(),
        label: body.label,
        forgery_type: body.forgery_type,
        artifacts: body.artifacts,
        note: body.note,
        // The database keeps microseconds: what is published is what is stored.
        created_at: now.trunc_subsecs(6),
    };
    serde_json::to_vec(&message).map_err(ApiError::internal)
}

/// A correction the worker would dead-letter, as a 400 naming the field.
fn refusal(e: RequestError) -> ApiError {
    match e {
        RequestError::InvalidField { field, reason } if field == "reviewer" => ApiError::bad(
            "reviewer",
            format!("this token's name cannot sign a correction: {reason}"),
        ),
        RequestError::InvalidField { field, reason } => ApiError::bad(field, reason),
        RequestError::MissingField(field) => ApiError::bad(field, "missing"),
        e => ApiError::internal(anyhow::anyhow!(
            "built a correction the worker refuses: {e}"
        )),
    }
}

/// The body; a 400 names the field at fault, or `body` when it is no JSON.
fn parse_body(bytes: &[u8]) -> Result<CorrectionBody, ApiError> {
    // The document as a whole first: a truncated one has no meaningful
    // path, and serde would take an array for a struct's fields in order.
    type Fields = std::collections::HashMap<String, serde::de::IgnoredAny>;
    serde_json::from_slice::<Fields>(bytes).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "not a JSON object",
            _ => "not valid JSON",
        };
        ApiError::bad("body", format!("{what}: {e}"))
    })?;
    parse_json(bytes).map_err(name_unknown_field)
}

/// serde reports unknown and missing fields at the top of the body, with
/// the field's name only in its message: name it (`reviewer`, `created_at`).
fn name_unknown_field(e: ApiError) -> ApiError {
    match e {
        ApiError::BadRequest { field, reason } if field == "body" => {
            let named = ["unknown field `", "missing field `"]
                .iter()
                .find_map(|p| reason.strip_prefix(p))
                .and_then(|rest| rest.split('`').next())
                .map(str::to_string);
            ApiError::BadRequest {
                field: named.unwrap_or(field),
                reason,
            }
        }
        e => e,
    }
}

/// Produces `payload` keyed by its request id (one verdict's corrections
/// stay in order), signed when a key is set, and waits for the broker.
async fn publish(app: &App, request_id: Uuid, payload: &[u8]) -> Result<(), ApiError> {
    let key = request_id.to_string();
    let signature = app.settings.feedback.key().map(|k| sign(k, payload));
    let mut headers = OwnedHeaders::new();
    if let Some(signature) = &signature {
        headers = headers.insert(Header {
            key: SIGNATURE_HEADER,
            value: Some(signature.as_bytes()),
        });
    }
    let record = FutureRecord::to(&app.settings.kafka.feedback_topic)
        .key(&key)
        .payload(payload)
        .headers(headers);
    let sent = tokio::time::timeout(PUBLISH_TIMEOUT, app.producer.send(record, PUBLISH_TIMEOUT));
    match sent.await {
        Ok(Ok(_delivery)) => Ok(()),
        Ok(Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _))) => {
            Err(ApiError::bad("body", "too large for the feedback topic"))
        }
        Ok(Err((e, _))) => {
            tracing::warn!(%request_id, error = %e, "the feedback topic refused a correction");
            Err(ApiError::Unavailable(
                "the feedback topic did not take the correction; submit it again".into(),
            ))
        }
        Err(_) => Err(ApiError::Unavailable(format!(
            "the feedback topic did not acknowledge the correction within {} s; submit it again",
            PUBLISH_TIMEOUT.as_secs()
        ))),
    }
}

fn label_schema() -> Object {
    enum_schema(&[Label::Real, Label::Fake])
}

fn forgery_type_schema() -> Object {
    let mut schema = enum_schema(&ForgeryType::ALL);
    schema.description = Some("Only with `fake`.".into());
    schema
}

/// A string schema listing the serde names of `values`.
fn enum_schema<T: Serialize>(values: &[T]) -> Object {
    let names = values
        .iter()
        .filter_map(|v| serde_json::to_value(v).ok())
        .collect::<Vec<_>>();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .build()
}

fn artifacts_schema() -> utoipa::openapi::schema::Array {
    let text = || ObjectBuilder::new().schema_type(Type::String);
    let item = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("region", text().description(Some("e.g. `Eyes`")))
        .property("text", text())
        .required("region")
        .required("text");
    ArrayBuilder::new()
        .items(item)
        .max_items(Some(32))
        .description(Some(
            "Only with `fake`: trained on as the artifact description.",
        ))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "6f1c3a52-9a4e-4c9b-8d0e-2b7f9d1e4a10";

    fn field_of(e: ApiError) -> String {
        match e {
            ApiError::BadRequest { field, .. } => field,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    fn check(json: &str) -> Result<Vec<u8>, ApiError> {
        let body = parse_body(json.as_bytes())?;
        let now = "2026-11-27T12:00:00.123456789Z".parse().unwrap();
        let payload = payload(ID.parse().unwrap(), "ana", body, now)?;
        parse_feedback(&payload, now, Duration::from_secs(300)).map_err(refusal)?;
        Ok(payload)
    }

    #[test]
    fn the_payload_is_the_documented_message_with_the_servers_reviewer_and_time() {
        let payload =
            check(r#"{"label": "fake", "forgery_type": "face_swap", "note": "jaw"}"#).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "schema_version": 1, "request_id": ID, "reviewer": "ana", "label": "fake",
                "forgery_type": "face_swap", "note": "jaw",
                "created_at": "2026-11-27T12:00:00.123456Z"
            })
        );
    }

    #[test]
    fn bad_bodies_name_their_field() {
        for (body, field) in [
            (r#"{"label": "maybe"}"#, "label"),
            (
                r#"{"label": "real", "forgery_type": "face_swap"}"#,
                "forgery_type",
            ),
            (
                r#"{"label": "fake", "forgery_type": "morph"}"#,
                "forgery_type",
            ),
            (r#"{"label": "real", "reviewer": "mallory"}"#, "reviewer"),
            (
                r#"{"label": "real", "created_at": "2020-01-01T00:00:00Z"}"#,
                "created_at",
            ),
            (r#"{"note": "no label"}"#, "label"),
            (
                r#"{"label": "fake", "artifacts": [{"region": " ", "text": "x"}]}"#,
                "artifacts",
            ),
            (
                r#"{"label": "fake", "artifacts": [{"region": "eyes"}]}"#,
                "artifacts[0]",
            ),
            (r#"{"label": "real", "note": "a\u0000b"}"#, "note"),
            (r#"{"label": "real""#, "body"),
            (r#"["real"]"#, "body"),
            ("", "body"),
        ] {
            assert_eq!(field_of(check(body).unwrap_err()), field, "{body}");
        }
        let long = format!(r#"{{"label": "real", "note": "{}"}}"#, "x".repeat(4001));
        assert_eq!(field_of(check(&long).unwrap_err()), "note");
    }

    #[test]
    fn the_route_and_its_closed_body_are_documented() {
        let (_, doc) = super::routes().split_for_parts();
        let doc = serde_json::to_value(doc).unwrap();
        let route = &doc["paths"]["/api/verdicts/{request_id}/corrections"]["post"];
        assert!(route["responses"]["202"].is_object(), "{route}");
        let body = &doc["components"]["schemas"]["CorrectionBody"];
        assert_eq!(body["required"], serde_json::json!(["label"]), "{body}");
        assert_eq!(body["additionalProperties"], false, "{body}");
        let types = &body["properties"]["forgery_type"]["enum"];
        assert_eq!(types.as_array().map(Vec::len), Some(4), "{body}");
    }
}
