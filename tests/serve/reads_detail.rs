//! One verdict: its fields, image reference, conversation (the verdict's
//! own turns, then stored follow-ups) and corrections; its image bytes, and
//! the 409 once retention has removed them; 404 for unknown or malformed ids.

use chrono::Duration;
use dfa::domain::access::Role;
use dfa::store::FollowUp;
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

use crate::harness::{png, Harness, Seed};
use crate::reads::{correct, t0};

#[tokio::test]
async fn one_verdict_shows_its_image_conversation_and_corrections() {
    let h = Harness::start("reads_detail").await;
    let token = h.token(Role::Reviewer, "ana", None).await;
    let bytes = png(7);
    let sha = h.put_image(&bytes).await;
    let mut s = Seed::new(&sha, t0());
    s.adapter_id = Some("ad1".into());
    s.tenant = Some("acme".into());
    h.seed(&s).await;
    let id = s.request_id;
    h.app
        .store
        .append_follow_up(
            id,
            &FollowUp {
                author: "ana",
                question: "Why the eyes?",
                answer: "The reflections differ.",
                adapter_id: Some("ad1"),
                expected_turn: None,
            },
        )
        .await
        .unwrap();
    correct(
        &h.env.pool,
        id,
        "bo",
        "real",
        None,
        t0() + Duration::minutes(1),
    )
    .await;
    correct(
        &h.env.pool,
        id,
        "ana",
        "fake",
        Some("face_editing"),
        t0() + Duration::minutes(2),
    )
    .await;

    let (status, v) = h.get(&format!("/api/verdicts/{id}"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["request_id"], id.to_string());
    assert_eq!(v["label"], "fake");
    assert_eq!(v["forgery_type"], "face_swap");
    assert_eq!(v["tenant"], "acme");
    assert_eq!(v["adapter_id"], "ad1");
    assert_eq!(v["explanation"], "1. Eyes: the reflections differ.");
    assert_eq!(v["image"]["sha256"], sha);
    assert_eq!(v["image"]["source"], format!("sha256:{sha}"));
    assert_eq!(v["image"]["url"], format!("/api/verdicts/{id}/image"));

    // The verdict's turns (detection, classification, artifacts), then the
    // stored follow-up.
    let turns = v["conversation"].as_array().unwrap();
    assert_eq!(turns.len(), 6 + 2, "{v}");
    assert!(turns[..6].iter().all(|t| t["screening"] == true));
    assert_eq!(turns[0]["role"], "user");
    assert_eq!(turns[1]["text"], "Yes.");
    assert_eq!(turns[1]["adapter"], "ad1");
    assert_eq!(turns[5]["text"], "1. Eyes: the reflections differ.");
    assert_eq!(turns[6]["author"], "ana");
    assert_eq!(turns[6]["role"], "user");
    assert_eq!(turns[6]["text"], "Why the eyes?");
    assert_eq!(turns[6]["screening"], false);
    assert_eq!(turns[7]["role"], "assistant");
    assert_eq!(turns[7]["author"], Value::Null);
    assert_eq!(turns[7]["adapter"], "ad1");
    assert!(turns[7]["time"].as_str().is_some());

    let corrections = v["corrections"].as_array().unwrap();
    assert_eq!(corrections.len(), 2);
    assert_eq!(corrections[0]["reviewer"], "bo");
    assert_eq!(corrections[0]["label"], "real");
    assert_eq!(corrections[1]["reviewer"], "ana");
    assert_eq!(corrections[1]["forgery_type"], "face_editing");

    // The image: its bytes, typed by what they are.
    let r = h
        .http
        .get(h.url(&format!("/api/verdicts/{id}/image")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.bytes().await.unwrap().as_ref(), bytes.as_slice());

    // Unknown and malformed ids are alike: 404.
    for bad in [Uuid::new_v4().to_string(), "not-a-uuid".into(), "1".into()] {
        for path in ["", "/image"] {
            let (status, body) = h
                .get(&format!("/api/verdicts/{bad}{path}"), Some(&token))
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{bad}{path}: {body}");
        }
    }

    // Retention deleted the file: 409, saying so.
    std::fs::remove_file(h.images().path_of(&sha)).unwrap();
    let (status, body) = h
        .get(&format!("/api/verdicts/{id}/image"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("image_store.retain_days"),
        "{body}"
    );
    // The verdict itself still reads.
    assert_eq!(
        h.get(&format!("/api/verdicts/{id}"), Some(&token)).await.0,
        StatusCode::OK
    );
    h.stop().await;
}
