//! Corrections over HTTP: validated like the worker validates them, signed,
//! published to the feedback topic only once accepted, and stored by a
//! running worker with the token's name and the server's time.

use std::time::Duration;

use chrono::{DateTime, Utc};
use dfa::domain::access::Role;
use dfa::domain::signature::sign;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::{Harness, Seed};

const KEY: &str = "corrections-test-signing-key-of-32-bytes-or-more";
const WAIT: Duration = Duration::from_secs(60);

fn corrections(id: Uuid) -> String {
    format!("/api/verdicts/{id}/corrections")
}

/// A fake verdict (of a seeded image row only: no model is run here).
async fn seed(h: &Harness, tenant: Option<&str>) -> Uuid {
    let mut s = Seed::new(&"ab".repeat(32), Utc::now());
    s.tenant = tenant.map(str::to_string);
    h.seed(&s).await;
    s.request_id
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_correction_through_the_api_is_stored_by_a_running_worker() {
    let h = Harness::start_with("serve_correct", |s| {
        s.feedback.signing_key = KEY.to_string().into();
    })
    .await;
    let worker = h.env.start_worker(&[("DFA__FEEDBACK__SIGNING_KEY", KEY)]);
    let id = seed(&h, Some("acme")).await;
    let reviewer = h
        .token(Role::Reviewer, "ana@trust-and-safety", Some("acme"))
        .await;

    let before = Utc::now();
    let (status, body) = h
        .post(
            &corrections(id),
            Some(&reviewer),
            &json!({"label": "real", "note": "a real scar, not a blend line"}),
        )
        .await;
    let after = Utc::now();
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["reviewer"], "ana@trust-and-safety");
    assert_eq!(body["request_id"], id.to_string());
    assert_eq!(body["label"], "real");
    let created_at: DateTime<Utc> = body["created_at"].as_str().unwrap().parse().unwrap();
    assert!(
        before - chrono::TimeDelta::milliseconds(1) <= created_at && created_at <= after,
        "{created_at} is the server's time"
    );

    // On the topic: the 202's body, keyed by the request id, signed.
    let sent = h.env.read_topic(&h.env.feedback, 1, WAIT).await;
    assert_eq!(sent.len(), 1);
    let payload: Value = serde_json::from_slice(&sent[0].payload).unwrap();
    assert_eq!(payload, body);
    assert_eq!(sent[0].key.as_deref(), Some(id.to_string().as_str()));
    assert_eq!(
        sent[0].headers["dfa-signature"],
        sign(KEY.as_bytes(), &sent[0].payload)
    );

    // The worker checked the signature and stored it.
    let stored = h
        .env
        .wait_count("SELECT count(*) FROM corrections", 1, WAIT)
        .await;
    assert_eq!(stored, 1, "worker log:\n{}", worker.stderr());
    let (who, label, note, at): (String, String, Option<String>, DateTime<Utc>) =
        sqlx::query_as("SELECT reviewer, label, note, created_at FROM corrections")
            .fetch_one(&h.env.pool)
            .await
            .unwrap();
    assert_eq!(who, "ana@trust-and-safety");
    assert_eq!(label, "real");
    assert_eq!(note.as_deref(), Some("a real scar, not a blend line"));
    assert_eq!(at, created_at, "stored as published, to the microsecond");
    assert_eq!(
        h.env.count("SELECT count(*) FROM rejected_requests").await,
        0
    );
    h.stop().await;
}

#[tokio::test]
async fn bad_corrections_are_400_naming_the_field_and_nothing_is_published() {
    let h = Harness::start("serve_correct_bad").await;
    let id = seed(&h, None).await;
    let reviewer = h.token(Role::Reviewer, "ana", None).await;
    let long_note = "x".repeat(4001);
    for (body, field) in [
        (json!({"label": "maybe"}), "label"),
        (
            json!({"label": "real", "forgery_type": "face_swap"}),
            "forgery_type",
        ),
        (
            json!({"label": "fake", "forgery_type": "morphing"}),
            "forgery_type",
        ),
        (
            json!({"label": "real", "artifacts": [{"region": "Eyes", "text": "odd"}]}),
            "artifacts",
        ),
        (
            json!({"label": "fake", "artifacts": [{"region": "Eyes"}]}),
            "artifacts[0]",
        ),
        (json!({"label": "real", "note": long_note}), "note"),
        (json!({"label": "real", "note": "nul \u{0} inside"}), "note"),
        (json!({"label": "real", "reviewer": "mallory"}), "reviewer"),
        (
            json!({"label": "real", "created_at": "2099-01-01T00:00:00Z"}),
            "created_at",
        ),
        (
            json!({"label": "real", "schema_version": 1}),
            "schema_version",
        ),
        (json!({"note": "no label"}), "label"),
        (json!(["label", "real"]), "body"),
    ] {
        let (status, answer) = h.post(&corrections(id), Some(&reviewer), &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"], "bad_request", "{answer}");
        assert_eq!(answer["field"], field, "{body}: {answer}");
    }
    let malformed = h
        .http
        .post(h.url(&corrections(id)))
        .bearer_auth(&reviewer)
        .header("content-type", "application/json")
        .body("{\"label\": ")
        .send()
        .await
        .unwrap();
    let (status, answer) = crate::harness::json_response(malformed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["field"], "body", "{answer}");
    assert_eq!(h.env.topic_len(&h.env.feedback), 0, "nothing published");
    h.stop().await;
}

#[tokio::test]
async fn other_tenants_unknown_verdicts_and_analysts_are_refused_unsigned_without_a_key() {
    let h = Harness::start("serve_correct_who").await;
    let ours = seed(&h, Some("acme")).await;
    let theirs = seed(&h, Some("globex")).await;
    let reviewer = h.token(Role::Reviewer, "ana", Some("acme")).await;
    let analyst = h.token(Role::Analyst, "bo", None).await;
    let body = json!({"label": "fake", "forgery_type": "face_editing",
        "artifacts": [{"region": "Mouth", "text": "The teeth blur into one band."}]});

    for path in [
        corrections(theirs),
        corrections(Uuid::new_v4()),
        "/api/verdicts/not-a-uuid/corrections".to_string(),
    ] {
        let (status, answer) = h.post(&path, Some(&reviewer), &body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
        assert_eq!(answer["error"], "not_found");
    }
    let (status, answer) = h.post(&corrections(ours), Some(&analyst), &body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    let (status, _) = h.post(&corrections(ours), None, &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, answer) = h.post(&corrections(ours), Some(&reviewer), &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["artifacts"][0]["region"], "Mouth");
    let sent = h.env.read_topic(&h.env.feedback, 1, WAIT).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].key.as_deref(),
        Some(ours.to_string().as_str()),
        "only the accepted correction is published"
    );
    assert!(
        !sent[0].headers.contains_key("dfa-signature"),
        "no key, no signature"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_correction_the_broker_does_not_take_is_503_never_202() {
    let h = Harness::start_with("serve_correct_503", |s| {
        // A topic that does not exist (and is never auto-created), and a
        // producer that gives up on it quickly.
        s.kafka.feedback_topic = format!("{}.missing", s.kafka.feedback_topic);
        s.kafka
            .options
            .insert("message.timeout.ms".into(), "1500".to_string().into());
    })
    .await;
    let id = seed(&h, None).await;
    let reviewer = h.token(Role::Reviewer, "ana", None).await;
    let (status, answer) = h
        .post(&corrections(id), Some(&reviewer), &json!({"label": "real"}))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["error"], "unavailable");
    h.stop().await;
}
