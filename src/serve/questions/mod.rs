//! `POST /api/verdicts/{request_id}/questions`: a reviewer's follow-up on a
//! stored verdict. The model sees the conversation as DFA-GPT holds it (the
//! image, the verdict's own turns, every earlier follow-up, then the new
//! question); the answer is persisted with the asker's name once complete.
//! JSON by default; `Accept: text/event-stream` streams it (SSE).
//!
//! - here: the checks, in order (401, 403, 400, 404, 429, 409), and the
//!   conversation to continue (`Asked`)
//! - `answer`: running it in the engine, persisting it, the JSON answer
//! - `stream`: the same answer as server-sent events

mod answer;
mod stream;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub use answer::{FollowUpAnswer, FollowUpTimings};

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::parse_json;
use super::state::App;
use crate::domain::access::Permission;
use crate::domain::dialogue::{conversation_key, history, Screened};
use crate::engine::{AnalysisRequest, Tasks};
use crate::intake::DecodedImage;
use crate::store::turns_of;

pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new().routes(routes!(ask_question))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuestionBody {
    /// Not blank; at most `serve.max_question_chars` characters.
    // Missing reads as empty, so that it too is a 400 naming `question`.
    #[serde(default)]
    #[schema(required = true)]
    pub question: String,
}

/// A follow-up ready to run: every check passed, the image decoded.
pub(super) struct Asked {
    request_id: Uuid,
    question: String,
    author: String,
    /// The turn the question takes if the conversation does not move on
    /// while the answer is generated.
    next_turn: i32,
    request: AnalysisRequest,
}

/// Asks a follow-up question about a verdict; the answer is persisted in
/// its conversation with `author` = the token's name. With
/// `Accept: text/event-stream` the answer streams as server-sent events:
/// `token` events (`{"text": piece}`) as it is generated, then one `done`
/// event with the JSON answer once it is persisted, or one `error` event
/// (an error body). A client that disconnects before `done` leaves nothing
/// stored.
#[utoipa::path(post, path = "/api/verdicts/{request_id}/questions", tag = "questions",
    params(("request_id" = Uuid, Path, description = "the verdict's request id")),
    request_body = QuestionBody,
    responses(
        (status = 200, description = "the answer, persisted", content(
            (FollowUpAnswer = "application/json"),
            (String = "text/event-stream"))),
        (status = 400, body = ErrorBody, description = "blank or over-long question (field `question`)"),
        (status = 404, body = ErrorBody, description = "no such verdict (or another tenant's)"),
        (status = 409, body = ErrorBody, description = "the verdict's image is gone from the image store"),
        (status = 429, body = ErrorBody, description = "over `serve.questions_per_minute`; see Retry-After"),
        (status = 503, body = ErrorBody, description = "no answer within `serve.answer_timeout`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn ask_question(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Permission::Ask)?;
    let question = question_of(&body, app.settings.serve.max_question_chars)?;
    let asked = prepare(&app, &caller, &request_id, question).await?;
    if wants_stream(&headers) {
        Ok(stream::respond(app, asked))
    } else {
        Ok(answer::respond(&app, asked).await?.into_response())
    }
}

/// The question, trimmed, or a 400 naming `question`.
fn question_of(body: &[u8], max_chars: usize) -> Result<String, ApiError> {
    let body: QuestionBody = parse_json(body)?;
    let question = body.question.trim();
    if question.is_empty() {
        return Err(ApiError::bad("question", "must not be empty"));
    }
    let chars = question.chars().count();
    if chars > max_chars {
        return Err(ApiError::bad(
            "question",
            format!("{chars} characters; at most {max_chars} (serve.max_question_chars)"),
        ));
    }
    Ok(question.to_string())
}

/// The verdict the caller may see (404 otherwise, a malformed id included),
/// within the caller's rate, with its conversation so far and its image.
async fn prepare(
    app: &App,
    caller: &Caller,
    request_id: &str,
    question: String,
) -> Result<Asked, ApiError> {
    let (request_id, basis) = caller.visible_verdict(app, request_id).await?;
    check_rate(app, caller)?;
    let records = app.store.conversation(request_id).await?;
    let screened = Screened {
        label: basis.label,
        forgery_type: basis.forgery_type,
        explanation: basis.explanation.as_deref(),
    };
    let history = history(&app.prompts, &screened, &turns_of(&records));
    let image = stored_image(app, &basis.image_sha256).await?;
    let tasks = Tasks {
        image_key: Some(conversation_key(request_id)),
        ..Tasks::follow_up(history, question.clone())
    };
    Ok(Asked {
        request_id,
        question,
        author: caller.name().to_string(),
        next_turn: records.last().map_or(0, |r| r.turn + 1),
        request: AnalysisRequest { image, tasks },
    })
}

/// One question more for this token, or a 429 saying when.
fn check_rate(app: &App, caller: &Caller) -> Result<(), ApiError> {
    let limit = &app.question_limit;
    limit
        .check_key(&caller.0.token_id)
        .map_err(|not_until| ApiError::TooManyRequests {
            retry_after: not_until.wait_time_from(limit.clock().now()),
        })
}

/// The verdict's image from the image store, decoded within the budget; a
/// 409 when retention has removed it.
async fn stored_image(app: &App, sha256: &str) -> Result<DecodedImage, ApiError> {
    let (images, key) = (app.images.clone(), sha256.to_string());
    let read = tokio::task::spawn_blocking(move || images.get(&key))
        .await
        .map_err(ApiError::internal)?;
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(e) if e.source.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::Conflict(format!(
                "the image of this verdict is no longer in the image store (images unused for \
                 image_store.retain_days = {} days are deleted); follow-up questions need the image",
                app.settings.image_store.retain_days
            )))
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    let (image, _) = app.intake.decode(Arc::new(bytes)).await;
    image.map_err(|e| ApiError::Conflict(format!("the stored image cannot be decoded: {e}")))
}

/// Whether the client asked for server-sent events.
fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let media = range.split(';').next().unwrap_or_default().trim();
            media.eq_ignore_ascii_case("text/event-stream")
        })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn field(e: ApiError) -> String {
        match e {
            ApiError::BadRequest { field, .. } => field,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn a_question_is_trimmed_and_bounded_in_characters() {
        assert_eq!(
            question_of(br#"{"question": " Why? "}"#, 4).unwrap(),
            "Why?"
        );
        assert_eq!(
            question_of("{\"question\": \"ééé\"}".as_bytes(), 3).unwrap(),
            "ééé"
        );
        for bad in [
            r#"{"question": "  "}"#,
            r#"{}"#,
            r#"{"question": "Why not?"}"#,
        ] {
            assert_eq!(
                field(question_of(bad.as_bytes(), 4).unwrap_err()),
                "question",
                "{bad}"
            );
        }
        assert_eq!(
            field(question_of(br#"{"question": 1}"#, 4).unwrap_err()),
            "question"
        );
        assert_eq!(field(question_of(br#"{"q": "x"}"#, 4).unwrap_err()), "q");
    }

    #[test]
    fn event_streams_are_asked_for_by_accept() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static(v));
            wants_stream(&h)
        };
        assert!(with("text/event-stream"));
        assert!(with("application/json, Text/Event-Stream;q=0.9"));
        assert!(!with("application/json"));
        assert!(!wants_stream(&HeaderMap::new()));
    }
}
