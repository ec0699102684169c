//! Answers: persisted with their author and adapter, seen by the next
//! question; a request's own question read as a reviewer's would be.

use dfa::domain::access::Role;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{conversation, engine, questions, rows, seed, store_verdict};
use crate::harness::{png, Harness};

#[tokio::test(flavor = "multi_thread")]
async fn a_follow_up_is_persisted_with_its_author_and_seen_by_the_next() {
    let h = Harness::start_on("serve_ask", |_| {}, engine(16)).await;
    let id = seed(&h, None).await;
    let alice = h.token(Role::Reviewer, "alice@trust", None).await;

    let (status, first) = h
        .post(
            &questions(id),
            Some(&alice),
            &json!({"question": " Why is it fake? "}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["request_id"], id.to_string());
    assert_eq!(first["turn"], 0);
    assert_eq!(first["question"], "Why is it fake?");
    assert_eq!(first["author"], "alice@trust");
    assert_eq!(first["adapter"], "tiny-0");
    assert!(
        first["timings_ms"]["total"].as_f64().unwrap() > 0.0,
        "{first}"
    );

    let (status, second) = h
        .post(
            &questions(id),
            Some(&alice),
            &json!({"question": "Which region?"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["turn"], 2, "after the first question and its answer");
    // The same question on a twin verdict (same image, same turns, possibly
    // another tenant's) reuses nothing: the cache is per verdict, so what
    // one conversation left is never observable from another.
    let twin = seed(&h, None).await;
    let (status, third) = h
        .post(
            &questions(twin),
            Some(&alice),
            &json!({"question": "Which region?"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{third}");
    let reused = |v: &Value| v["reused_tokens"].as_u64().unwrap();
    assert!(
        reused(&second) > 0,
        "the second question continues the first one's cached conversation: {second}"
    );
    assert_eq!(reused(&third), 0, "nothing shared across verdicts: {third}");

    let turns = conversation(&h, id).await;
    let rows = rows(&turns);
    let answer = |v: &Value| v["answer"].as_str().unwrap().to_string();
    let (a1, a2) = (answer(&first), answer(&second));
    assert_eq!(
        rows,
        [
            (0, "user", Some("alice@trust"), "Why is it fake?", None),
            (1, "assistant", None, a1.as_str(), Some("tiny-0")),
            (2, "user", Some("alice@trust"), "Which region?", None),
            (3, "assistant", None, a2.as_str(), Some("tiny-0")),
        ]
    );
    let metrics = h
        .http
        .get(h.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("dfa_follow_ups_total{outcome=\"answered\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dfa_follow_up_seconds_count{cache=\"hit\",stage=\"answer\"} 1"),
        "{metrics}"
    );
    let (_, doc) = h.get("/api/openapi.json", Some(&alice)).await;
    assert!(doc["paths"]["/api/verdicts/{request_id}/questions"]["post"].is_object());
    h.stop().await;
}

/// A verdict made as the worker makes it (`analyze_bytes` on the serve
/// engine, with a question of its own), stored as the worker stores it.
async fn analysed_with_a_question(h: &Harness, question: &str) -> (String, dfa::domain::Verdict) {
    let bytes = png(5);
    let sha = h.put_image(&bytes).await;
    let mut tasks = dfa::engine::Tasks::requested(true, 0.5, vec![question.to_string()]);
    let id = Uuid::new_v4();
    tasks.image_key = Some(dfa::domain::dialogue::conversation_key(id));
    let verdict = dfa::engine::analyze::analyze_bytes(
        h.app.engine.as_ref(),
        id,
        std::sync::Arc::new(bytes),
        tasks,
        dfa::engine::analyze::Stages {
            intake: &h.app.intake,
            analysis: &h.app.settings.analysis,
            faces: &h.app.faces,
        },
    )
    .await
    .expect("analysed");
    store_verdict(h, &sha, &verdict).await;
    (sha, verdict)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_requests_own_question_reads_as_a_reviewers_would() {
    let h = Harness::start_on("serve_ask_worker", |_| {}, engine(16)).await;
    let (sha, verdict) = analysed_with_a_question(&h, "Why?").await;
    let id = verdict.request_id;
    assert_eq!(verdict.answers.len(), 1);
    let turns = conversation(&h, id).await;
    let rows = rows(&turns);
    let answer = verdict.answers[0].answer.as_str();
    assert_eq!(
        rows,
        [
            (0, "user", None, "Why?", None),
            (1, "assistant", None, answer, Some("tiny-0")),
        ],
        "the worker's answer names its adapter"
    );

    // A reviewer's follow-up continues that conversation from the engine's
    // cache (the key is the verdict's); a twin verdict on the same image
    // shares nothing. That the request's question saw the verdict's turns
    // is checked exactly in engine::analyze's unit tests.
    let reviewer = h.token(Role::Reviewer, "ivy", None).await;
    let where_ = json!({"question": "Where?"});
    let (status, next) = h.post(&questions(id), Some(&reviewer), &where_).await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert_eq!(next["turn"], 2);
    let twin = dfa::domain::Verdict {
        request_id: Uuid::new_v4(),
        answers: Vec::new(),
        ..verdict.clone()
    };
    store_verdict(&h, &sha, &twin).await;
    let (status, alone) = h
        .post(&questions(twin.request_id), Some(&reviewer), &where_)
        .await;
    assert_eq!(status, StatusCode::OK, "{alone}");
    let reused = |v: &Value| v["reused_tokens"].as_u64().unwrap();
    assert!(
        reused(&next) > 0,
        "the request's conversation continues: {next}"
    );
    assert_eq!(reused(&alone), 0, "nothing shared across verdicts: {alone}");
    h.stop().await;
}
