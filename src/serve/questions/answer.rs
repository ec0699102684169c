//! Running a follow-up in the engine to its end, persisting it, and the
//! JSON answer. The answer's pieces reach a `Listener` as they are
//! generated (the SSE stream; nobody for JSON); the engine stops the job
//! when the piece channel's receiver, held here, is dropped.

use std::time::{Duration, Instant};

use axum::Json;
use serde::Serialize;
use tokio::sync::mpsc;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{About, Asked};
use crate::engine::{Analysis, AnalysisRequest, Backend, EngineError};
use crate::serve::error::ApiError;
use crate::serve::state::App;
use crate::store::FollowUp;

/// Answer pieces the engine may send ahead of the listener.
const PIECES_BUFFERED: usize = 64;

/// A follow-up's answer, as persisted.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FollowUpAnswer {
    pub request_id: Uuid,
    /// The question's turn in the verdict's conversation; the answer is
    /// `turn + 1`.
    pub turn: i32,
    /// The face the answer is about (its index in the verdict's `faces`);
    /// null: the whole image (a verdict without faces).
    pub face: Option<u32>,
    pub question: String,
    pub answer: String,
    /// Who asked: the token's name.
    pub author: String,
    /// The adapter that answered (none: the base model).
    pub adapter: Option<String>,
    /// KV positions restored from the engine's conversation cache instead
    /// of decoded (0: the conversation was decoded from the image on).
    pub reused_tokens: usize,
    pub timings_ms: FollowUpTimings,
}

/// Milliseconds, from when the question reached the engine's queue.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FollowUpTimings {
    /// Until the answer's first piece (none: an empty answer).
    pub first_token: Option<f64>,
    /// Vision tower and image tokens (0 when restored from the cache).
    pub encode_image: f64,
    pub prefill: f64,
    pub generate: f64,
    /// Until the complete answer, queueing included.
    pub total: f64,
}

/// Where the answer's pieces go while it is generated.
pub(super) trait Listener {
    /// Hands on one piece; false when the listener has gone.
    async fn piece(&mut self, text: String) -> bool;
    /// Resolves when the listener has gone.
    async fn gone(&self);
}

/// Why a follow-up ended without an answer.
pub(super) enum Stop {
    /// The listener went away; the engine was told to stop.
    Gone,
    Failed(ApiError),
}

/// A complete answer, not yet persisted.
pub(super) struct Answered {
    analysis: Analysis,
    first_token: Option<Duration>,
    elapsed: Duration,
}

/// Answers as JSON once persisted.
pub(super) async fn respond(app: &App, asked: Asked) -> Result<Json<FollowUpAnswer>, ApiError> {
    let Asked {
        request_id,
        question,
        author,
        about,
        next_turn,
        request,
    } = asked;
    let done = match run(app, request, &mut Nobody).await {
        Ok(answered) => {
            let asked = (&*question, &*author, about, next_turn);
            persist(app, request_id, asked, answered).await
        }
        Err(Stop::Failed(e)) => Err(e),
        // `Nobody` never goes.
        Err(Stop::Gone) => Err(ApiError::internal(anyhow::anyhow!("follow-up abandoned"))),
    };
    count(app, if done.is_ok() { "answered" } else { "failed" });
    done.map(Json)
}

/// Counts a follow-up that reached the engine by how it ended.
pub(super) fn count(app: &App, outcome: &'static str) {
    app.metrics.follow_ups.with_label_values(&[outcome]).inc();
}

/// A JSON request listens to no piece: it wants the whole answer.
struct Nobody;

impl Listener for Nobody {
    async fn piece(&mut self, _text: String) -> bool {
        true
    }

    async fn gone(&self) {
        std::future::pending::<()>().await
    }
}

/// Runs the follow-up within `serve.answer_timeout`, handing its pieces to
/// `listener` in order; every piece is handed on before this returns.
pub(super) async fn run(
    app: &App,
    mut request: AnalysisRequest,
    listener: &mut impl Listener,
) -> Result<Answered, Stop> {
    let (tx, mut pieces) = mpsc::channel(PIECES_BUFFERED);
    request.tasks.stream = Some(tx);
    let started = Instant::now();
    let mut first_token = None;
    let timeout = app.settings.serve.answer_timeout;
    // One deadline for everything, handing pieces on included: a client that
    // keeps the connection open but stops reading must not hold the engine's
    // stream (and so the engine) past it.
    let deadline = tokio::time::Instant::now() + timeout;
    let analysis = tokio::time::timeout_at(deadline, app.engine.analyze(request));
    tokio::pin!(analysis);
    let mut open = true;
    let result = loop {
        tokio::select! {
            // Pieces first: all of them are sent before the reply.
            biased;
            piece = pieces.recv(), if open => match piece {
                Some(text) => {
                    first_token.get_or_insert_with(|| started.elapsed());
                    hand_on(listener, text, deadline).await?;
                }
                None => open = false,
            },
            // Returning drops `pieces`: the engine stops the job.
            () = listener.gone() => return Err(Stop::Gone),
            result = &mut analysis => break result,
        }
    };
    while let Ok(text) = pieces.try_recv() {
        first_token.get_or_insert_with(|| started.elapsed());
        hand_on(listener, text, deadline).await?;
    }
    let analysis = match result {
        Ok(Ok(analysis)) => analysis,
        Ok(Err(e)) => return Err(Stop::Failed(engine_error(e))),
        Err(_) => {
            return Err(Stop::Failed(ApiError::Unavailable(format!(
                "no answer within serve.answer_timeout ({} s); retry later",
                timeout.as_secs_f64()
            ))))
        }
    };
    Ok(Answered {
        analysis,
        first_token,
        elapsed: started.elapsed(),
    })
}

/// Hands one piece on by `deadline`; a listener gone or too slow to take
/// it ends the follow-up (dropping the piece channel stops the engine job).
async fn hand_on(
    listener: &mut impl Listener,
    text: String,
    deadline: tokio::time::Instant,
) -> Result<(), Stop> {
    let piece = listener.piece(text.replace('\0', "\u{FFFD}"));
    match tokio::time::timeout_at(deadline, piece).await {
        Ok(true) => Ok(()),
        Ok(false) | Err(_) => Err(Stop::Gone),
    }
}

fn engine_error(e: EngineError) -> ApiError {
    match e {
        EngineError::TooLong { needed, available } => ApiError::Conflict(format!(
            "the conversation no longer fits the model's context ({needed} KV cells needed, \
             engine.n_ctx is {available}); no more follow-ups on this verdict"
        )),
        EngineError::Image(m) => {
            ApiError::Conflict(format!("the model cannot process the stored image: {m}"))
        }
        EngineError::Stopped => ApiError::Unavailable("the engine has stopped".into()),
        other => ApiError::internal(other),
    }
}

/// Appends the question and its answer to the conversation (one
/// transaction: both turns or neither, about the face asked about) at
/// `next_turn`, and records the timings. A follow-up stored meanwhile on the
/// same verdict (which this answer may not have seen) makes it a 409: asked
/// again, it sees that one.
pub(super) async fn persist(
    app: &App,
    request_id: Uuid,
    (question, author, about, next_turn): (&str, &str, About, i32),
    answered: Answered,
) -> Result<FollowUpAnswer, ApiError> {
    let Answered {
        analysis,
        first_token,
        elapsed,
    } = answered;
    let answer = analysis
        .answers
        .into_iter()
        .next()
        .map(|a| a.answer.replace('\0', "\u{FFFD}"))
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("the engine gave no answer")))?;
    let adapter = analysis.model.adapter.map(|a| a.id);
    let turn = app
        .store
        .append_follow_up_about(
            request_id,
            about.stored,
            &FollowUp {
                author,
                question,
                answer: &answer,
                adapter_id: adapter.as_deref(),
                expected_turn: Some(next_turn),
            },
        )
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(
                "another follow-up on this verdict was answered while this one was generated; \
                 ask again so that the answer sees it"
                    .into(),
            )
        })?;
    let cache = if analysis.reused_tokens > 0 {
        "hit"
    } else {
        "miss"
    };
    let m = &app.metrics.follow_up;
    if let Some(t) = first_token {
        m.with_label_values(&["first_token", cache])
            .observe(t.as_secs_f64());
    }
    m.with_label_values(&["answer", cache])
        .observe(elapsed.as_secs_f64());
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok(FollowUpAnswer {
        request_id,
        turn,
        face: about.face,
        question: question.to_string(),
        answer,
        author: author.to_string(),
        adapter,
        reused_tokens: analysis.reused_tokens,
        timings_ms: FollowUpTimings {
            first_token: first_token.map(ms),
            encode_image: analysis.timings.encode_image,
            prefill: analysis.timings.prefill,
            generate: analysis.timings.generate,
            total: ms(elapsed),
        },
    })
}
