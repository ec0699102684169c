//! A follow-up's answer as server-sent events: `token` events while it is
//! generated, then `done` (the persisted answer) or `error`. The answer
//! runs in a task of its own that feeds a bounded event channel; the
//! response body drains it. When the client goes, axum drops the body,
//! the task sees the channel close, drops the engine's piece receiver (the
//! engine stops the job) and persists nothing.

use std::convert::Infallible;
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::answer::{self, Listener, Stop};
use super::Asked;
use crate::serve::error::{ApiError, ErrorBody};
use crate::serve::state::App;

/// Events waiting for a slow client; beyond that the answer waits for it.
const EVENTS_BUFFERED: usize = 32;

type Events = mpsc::Sender<Result<Event, Infallible>>;

pub(super) fn respond(app: Arc<App>, asked: Asked) -> Response {
    let (events, rx) = mpsc::channel(EVENTS_BUFFERED);
    tokio::spawn(answer_as_events(app, asked, events));
    let mut response = Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response();
    // Reverse proxies (nginx) would otherwise hold the pieces back.
    response.headers_mut().insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    response
}

#[derive(Serialize)]
struct Piece<'a> {
    text: &'a str,
}

struct Client(Events);

impl Listener for Client {
    async fn piece(&mut self, text: String) -> bool {
        match Event::default()
            .event("token")
            .json_data(Piece { text: &text })
        {
            Ok(event) => self.0.send(Ok(event)).await.is_ok(),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an answer piece");
                false
            }
        }
    }

    async fn gone(&self) {
        self.0.closed().await
    }
}

async fn answer_as_events(app: Arc<App>, asked: Asked, events: Events) {
    let Asked {
        request_id,
        question,
        author,
        about,
        next_turn,
        request,
    } = asked;
    let mut client = Client(events);
    let persisted = match answer::run(&app, request, &mut client).await {
        // Gone after the last piece too: nothing is stored, as promised.
        Err(Stop::Gone) => None,
        Ok(_) if client.0.is_closed() => None,
        Err(Stop::Failed(e)) => Some(Err(e)),
        Ok(answered) => {
            let asked = (&*question, &*author, about, next_turn);
            Some(answer::persist(&app, request_id, asked, answered).await)
        }
    };
    let event = match persisted {
        None => {
            tracing::info!(%request_id, "follow-up abandoned: the client left mid-stream");
            return answer::count(&app, "abandoned");
        }
        Some(Ok(done)) => {
            answer::count(&app, "answered");
            Event::default().event("done").json_data(done)
        }
        Some(Err(e)) => {
            answer::count(&app, "failed");
            error_event(e)
        }
    };
    match event {
        Ok(event) => {
            let _ = client.0.send(Ok(event)).await;
        }
        Err(e) => tracing::error!(error = %e, "cannot encode the last event"),
    }
}

/// The error body an HTTP answer would have had, as an `error` event.
fn error_event(e: ApiError) -> Result<Event, axum::Error> {
    match &e {
        ApiError::Internal(cause) => {
            tracing::error!(error = format!("{cause:#}"), "follow-up failed")
        }
        ApiError::Unavailable(m) => tracing::warn!(message = %m, "follow-up unavailable"),
        _ => {}
    }
    Event::default().event("error").json_data(ErrorBody {
        error: e.kind(),
        message: e.to_string(),
        field: None,
    })
}
