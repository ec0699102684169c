//! Refusals, each naming its cause: 400, 403, 404, 409, 429.

use dfa::domain::access::Role;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use super::{conversation, questions, seed, seed_without_image};
use crate::harness::Harness;

#[tokio::test(flavor = "multi_thread")]
async fn refusals_name_their_cause() {
    let h = Harness::start("serve_ask_refusals").await;
    let id = seed(&h, Some("acme")).await;
    let gone = seed_without_image(&h).await;
    let reviewer = h.token(Role::Reviewer, "dan", None).await;
    let acme = h.token(Role::Reviewer, "dan@acme", Some("acme")).await;
    let globex = h.token(Role::Reviewer, "eve@globex", Some("globex")).await;
    let analyst = h.token(Role::Analyst, "fay", None).await;
    let max = h.app.settings.serve.max_question_chars;

    for body in [
        json!({"question": ""}),
        json!({"question": " \n\t "}),
        json!({"question": "?".repeat(max + 1)}),
        json!({}),
    ] {
        let (status, answer) = h.post(&questions(id), Some(&reviewer), &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(answer["field"], "question", "{answer}");
    }
    let fits = json!({"question": "é".repeat(max)});
    let (status, answer) = h.post(&questions(gone), Some(&reviewer), &fits).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "{max} characters fit: {answer}"
    );

    let q = json!({"question": "Why?"});
    for (path, token, what) in [
        (questions(Uuid::new_v4()), &reviewer, "an unknown id"),
        (
            "/api/verdicts/not-a-uuid/questions".to_string(),
            &reviewer,
            "a malformed id",
        ),
        (questions(id), &globex, "another tenant's verdict"),
    ] {
        let (status, answer) = h.post(&path, Some(token), &q).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{what}: {answer}");
        assert_eq!(answer["error"], "not_found", "{what}");
    }
    let (status, answer) = h.post(&questions(id), Some(&analyst), &q).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");

    let (status, answer) = h.post(&questions(gone), Some(&reviewer), &q).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let message = answer["message"].as_str().unwrap();
    assert!(message.contains("image_store.retain_days"), "{message}");

    // The tenant's own verdict is answered.
    let (status, answer) = h.post(&questions(id), Some(&acme), &q).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(conversation(&h, gone).await.is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn questions_over_the_rate_are_refused_with_retry_after() {
    let h = Harness::start_with("serve_ask_rate", |s| {
        s.serve.questions_per_minute = 1;
        s.serve.questions_burst = 1;
    })
    .await;
    // No model run: the image is gone, so an allowed question is a 409.
    let gone = seed_without_image(&h).await;
    let gil = h.token(Role::Reviewer, "gil", None).await;
    let hal = h.token(Role::Reviewer, "hal", None).await;
    let q = json!({"question": "Why?"});

    // Refused before the rate is counted: invalid, unknown.
    let (status, _) = h
        .post(&questions(gone), Some(&gil), &json!({"question": ""}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = h.post(&questions(Uuid::new_v4()), Some(&gil), &q).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = h.post(&questions(gone), Some(&gil), &q).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "the first question is within the rate"
    );
    let response = h
        .http
        .post(h.url(&questions(gone)))
        .bearer_auth(&gil)
        .header(CONTENT_TYPE, "application/json")
        .body(q.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After: {retry}");
    let (_, body) = crate::harness::json_response(response).await;
    assert_eq!(body["error"], "rate_limited");

    let (status, _) = h.post(&questions(gone), Some(&hal), &q).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "another token has its own rate"
    );
    h.stop().await;
}
