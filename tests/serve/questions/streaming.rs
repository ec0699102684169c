//! Server-sent events: pieces that add up to the stored answer; a client
//! that leaves mid-stream, and an answer past the timeout, store nothing.

use std::time::Duration;

use dfa::domain::access::Role;
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{ask_streaming, conversation, engine, events, questions, seed, WAIT};
use crate::common;
use crate::harness::Harness;

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_streams_as_events_and_ends_persisted() {
    let h = Harness::start_on("serve_ask_sse", |_| {}, engine(16)).await;
    let id = seed(&h, None).await;
    let bob = h.token(Role::Reviewer, "bob", None).await;

    let response = ask_streaming(&h, id, &bob, "Is the hairline natural?").await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let body = tokio::time::timeout(WAIT, response.text())
        .await
        .expect("the stream ends")
        .expect("body");
    let events = events(&body);
    let (last, done) = events.last().expect("events").clone();
    assert_eq!(last, "done", "{body}");
    let tokens: Vec<&Value> = events
        .iter()
        .filter(|(name, _)| name == "token")
        .map(|(_, data)| data)
        .collect();
    assert!(!tokens.is_empty(), "the answer came in pieces: {body}");
    assert_eq!(
        tokens.len() + 1,
        events.len(),
        "only pieces, then done: {body}"
    );
    let streamed: String = tokens.iter().map(|t| t["text"].as_str().unwrap()).collect();
    assert_eq!(streamed, done["answer"].as_str().unwrap(), "{body}");
    assert_eq!(done["author"], "bob");
    assert_eq!(done["turn"], 0);

    let turns = conversation(&h, id).await;
    assert_eq!(turns.len(), 2);
    assert_eq!(
        turns[1].content, streamed,
        "what streamed is what was stored"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_leaves_mid_stream_leaves_no_answer() {
    // Long answers (the tiny model never ends one early: about a second),
    // so the client leaves while the model still generates.
    let h = Harness::start_on("serve_ask_leave", |_| {}, engine(1000)).await;
    let id = seed(&h, None).await;
    let carol = h.token(Role::Reviewer, "carol", None).await;

    let mut response = ask_streaming(&h, id, &carol, "Describe every region.").await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut seen = String::new();
    while !seen.contains("event: token") {
        let chunk = tokio::time::timeout(WAIT, response.chunk())
            .await
            .expect("a piece in time")
            .expect("body")
            .expect("a token event before the end");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(response);

    let abandoned = common::poll_until(
        WAIT,
        Duration::from_millis(20),
        || async {
            h.app
                .metrics
                .follow_ups
                .with_label_values(&["abandoned"])
                .get()
        },
        |n| *n == 1,
    )
    .await;
    let answered = h
        .app
        .metrics
        .follow_ups
        .with_label_values(&["answered"])
        .get();
    assert_eq!((abandoned, answered), (1, 0), "the question was abandoned");
    assert!(
        conversation(&h, id).await.is_empty(),
        "no half answer stored"
    );

    // The engine goes on answering; the next question is turn 0.
    let (status, next) = h
        .post(&questions(id), Some(&carol), &json!({"question": "Why?"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert_eq!(next["turn"], 0);
    assert_eq!(conversation(&h, id).await.len(), 2);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_past_the_timeout_is_503_and_not_stored() {
    // About a second of generation against a 100 ms limit.
    let h = Harness::start_on(
        "serve_ask_timeout",
        |s| s.serve.answer_timeout = Duration::from_millis(100),
        engine(1000),
    )
    .await;
    let id = seed(&h, None).await;
    let jo = h.token(Role::Reviewer, "jo", None).await;
    let (status, body) = h
        .post(&questions(id), Some(&jo), &json!({"question": "Why?"}))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("serve.answer_timeout"));

    let response = ask_streaming(&h, id, &jo, "Why?").await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = tokio::time::timeout(WAIT, response.text())
        .await
        .expect("the stream ends")
        .expect("body");
    let (last, error) = events(&body).last().expect("events").clone();
    assert_eq!(last, "error", "{body}");
    assert_eq!(error["error"], "unavailable");
    assert!(conversation(&h, id).await.is_empty());
    let failed = h
        .app
        .metrics
        .follow_ups
        .with_label_values(&["failed"])
        .get();
    assert_eq!(failed, 2);
    h.stop().await;
}
