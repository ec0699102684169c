//! `POST /api/verdicts/{request_id}/questions`: a reviewer's follow-up on a
//! stored verdict, about one of its faces (by default the most suspicious
//! one) or its whole image. The model sees the conversation as DFA-GPT holds
//! it (the face's crop, its own screening turns, every earlier follow-up
//! about it, then the new question); the answer is persisted with the
//! asker's name and the face once complete. JSON by default;
//! `Accept: text/event-stream` streams it (SSE).
//!
//! - here: the checks, in order (401, 403, 400, 404, 400 `face`, 429, 409),
//!   and the follow-up ready to run (`Asked`)
//! - `subject`: which face, and the conversation to continue
//! - `answer`: running it in the engine, persisting it, the JSON answer
//! - `stream`: the same answer as server-sent events

mod answer;
mod stream;
pub mod subject;

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
use crate::engine::AnalysisRequest;
use subject::{continuation, subject, Continuation};

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
    /// The face asked about (its `index` in the verdict's `faces`). Left
    /// out or null: the most suspicious face (`primary_face`), or the whole
    /// image for a verdict without faces.
    #[serde(default)]
    pub face: Option<u32>,
}

/// A follow-up ready to run: every check passed, the image decoded.
pub(super) struct Asked {
    request_id: Uuid,
    question: String,
    author: String,
    about: About,
    /// The turn the question takes if the conversation does not move on
    /// while the answer is generated.
    next_turn: i32,
    request: AnalysisRequest,
}

/// The face a follow-up is about, as answered and as stored.
#[derive(Debug, Clone, Copy)]
pub(super) struct About {
    /// The face's index; None: the whole image.
    face: Option<u32>,
    /// Its `face_index` (None: the verdict's own subject).
    stored: Option<u32>,
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
        (status = 400, body = ErrorBody, description = "blank or over-long question (field `question`); a face the verdict does not have (field `face`)"),
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
    let (question, face) = question_of(&body, app.settings.serve.max_question_chars)?;
    let asked = prepare(&app, &caller, &request_id, question, face).await?;
    if wants_stream(&headers) {
        Ok(stream::respond(app, asked))
    } else {
        Ok(answer::respond(&app, asked).await?.into_response())
    }
}

/// The question, trimmed, or a 400 naming `question`; and the face named.
fn question_of(body: &[u8], max_chars: usize) -> Result<(String, Option<u32>), ApiError> {
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
    Ok((question.to_string(), body.face))
}

/// The verdict the caller may see (404 otherwise, a malformed id included),
/// the face named on it (400 `face`), within the caller's rate, with its
/// conversation so far and its image.
async fn prepare(
    app: &App,
    caller: &Caller,
    request_id: &str,
    question: String,
    face: Option<u32>,
) -> Result<Asked, ApiError> {
    let (request_id, basis) = caller.visible_verdict(app, request_id).await?;
    let subject = subject(app, request_id, &basis, face).await?;
    check_rate(app, caller)?;
    let Continuation { next_turn, request } =
        continuation(app, request_id, &basis, &subject, question.clone()).await?;
    Ok(Asked {
        request_id,
        question,
        author: caller.name().to_string(),
        about: About {
            face: subject.index(),
            stored: subject.stored_index(),
        },
        next_turn,
        request,
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
            ("Why?".to_string(), None)
        );
        assert_eq!(
            question_of("{\"question\": \"ééé\"}".as_bytes(), 3).unwrap(),
            ("ééé".to_string(), None)
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
    fn a_face_is_named_by_its_index() {
        assert_eq!(
            question_of(br#"{"question": "Why?", "face": 1}"#, 9).unwrap(),
            ("Why?".to_string(), Some(1))
        );
        assert_eq!(
            question_of(br#"{"question": "Why?", "face": null}"#, 9).unwrap(),
            ("Why?".to_string(), None)
        );
        for bad in [r#"-1"#, r#""1""#, r#"1.5"#, r#"4294967296"#] {
            let body = format!(r#"{{"question": "Why?", "face": {bad}}}"#);
            assert_eq!(
                field(question_of(body.as_bytes(), 9).unwrap_err()),
                "face",
                "{bad}"
            );
        }
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
