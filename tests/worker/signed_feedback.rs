//! Signed feedback (`feedback.signing_key`, `feedback.require_signature`):
//! anyone who can produce to the feedback topic must not be able to correct
//! verdicts, so unsigned and forged corrections are dead-lettered as
//! `unsigned`, and only correctly signed ones are stored.

use std::time::Duration;

use crate::common;
use common::child::Worker;
use common::services::{request, Env, Received};
use dfa::domain::signature::sign;
use uuid::Uuid;

const KEY: &str = "worker-test-signing-key-of-32-bytes-or-more";
const OTHER_KEY: &str = "another-signing-key-also-32-bytes-or-more";
const LONG: Duration = Duration::from_secs(120);

/// A correction by `reviewer` of verdict `id`.
fn correction(id: Uuid, reviewer: &str) -> Vec<u8> {
    serde_json::json!({
        "request_id": id,
        "reviewer": reviewer,
        "label": "real",
        "created_at": "2026-11-27T10:00:00Z",
    })
    .to_string()
    .into_bytes()
}

/// A worker with `extra` settings, and one stored verdict to correct.
async fn worker_with_a_verdict(env: &Env, extra: &[(&str, &str)]) -> (Worker, Uuid) {
    let worker = env.start_worker(extra);
    let id = Uuid::new_v4();
    env.produce(&id.to_string(), &request(id, 1), &[]).await;
    let rows = env
        .wait_count("SELECT count(*) FROM verdicts", 1, LONG)
        .await;
    assert_eq!(rows, 1, "worker log:\n{}", worker.stderr());
    (worker, id)
}

/// The stored corrections' reviewers once `n` are stored, sorted.
async fn reviewers(env: &Env, n: i64, worker: &Worker) -> Vec<String> {
    let stored = env
        .wait_count("SELECT count(*) FROM corrections", n, LONG)
        .await;
    assert_eq!(stored, n, "worker log:\n{}", worker.stderr());
    sqlx::query_scalar("SELECT reviewer FROM corrections ORDER BY reviewer")
        .fetch_all(&env.pool)
        .await
        .unwrap()
}

fn kind(m: &Received) -> &str {
    m.headers["dfa-error-kind"].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_key_unsigned_and_forged_feedback_is_dead_lettered_and_signed_is_stored() {
    let env = Env::new("signed_fb").await;
    let (worker, id) = worker_with_a_verdict(&env, &[("DFA__FEEDBACK__SIGNING_KEY", KEY)]).await;
    let key = id.to_string();

    let unsigned = correction(id, "mallory-unsigned");
    env.produce_feedback(&key, &unsigned).await;
    let forged = correction(id, "mallory-other-key");
    let other = sign(OTHER_KEY.as_bytes(), &forged);
    env.produce_feedback_with(&key, &forged, &[("dfa-signature", &other)])
        .await;
    // A signature of another payload, replayed onto this one.
    let replayed = sign(KEY.as_bytes(), &correction(id, "ana"));
    env.produce_feedback_with(
        &key,
        &correction(id, "mallory-replay"),
        &[("dfa-signature", &replayed)],
    )
    .await;
    let garbled = correction(id, "mallory-garbled");
    env.produce_feedback_with(&key, &garbled, &[("dfa-signature", "v1=not-hex")])
        .await;
    let signed = correction(id, "ana");
    let signature = sign(KEY.as_bytes(), &signed);
    env.produce_feedback_with(&key, &signed, &[("dfa-signature", &signature)])
        .await;

    let dead = env.read_topic(&env.dlq, 4, LONG).await;
    assert_eq!(dead.len(), 4, "worker log:\n{}", worker.stderr());
    assert!(
        dead.iter().all(|m| kind(m) == "unsigned"),
        "{:?}",
        dead.iter().map(kind).collect::<Vec<_>>()
    );
    assert!(dead
        .iter()
        .all(|m| m.headers["dfa-original-topic"] == env.feedback));
    let reason_of = |payload: &[u8]| {
        let m = dead
            .iter()
            .find(|m| m.payload == payload)
            .expect("dead-lettered unchanged");
        m.headers["dfa-error-reason"].clone()
    };
    assert!(reason_of(&unsigned).contains("no dfa-signature header"));
    assert!(reason_of(&forged).contains("does not match the payload"));
    assert!(reason_of(&garbled).contains("is not `v1="));

    assert_eq!(reviewers(&env, 1, &worker).await, ["ana"]);
    let recorded = env
        .wait_count(
            "SELECT count(*) FROM rejected_requests WHERE error_kind = 'unsigned'",
            4,
            LONG,
        )
        .await;
    assert_eq!(recorded, 4, "each refusal is recorded");
    let metrics = worker.metrics().await;
    assert!(
        metrics.contains("dfa_dead_lettered_total{kind=\"unsigned\"} 4"),
        "dead letters counted by kind:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_unsigned_feedback_is_stored_as_before() {
    let env = Env::new("unsigned_fb").await;
    let (worker, id) = worker_with_a_verdict(&env, &[]).await;
    env.produce_feedback(&id.to_string(), &correction(id, "ana"))
        .await;
    // Nothing to check a signature with: a header is ignored.
    env.produce_feedback_with(
        &id.to_string(),
        &correction(id, "bo"),
        &[("dfa-signature", "v1=00")],
    )
    .await;
    assert_eq!(reviewers(&env, 2, &worker).await, ["ana", "bo"]);
    assert_eq!(env.count("SELECT count(*) FROM rejected_requests").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_without_require_signature_passes_unsigned_but_refuses_forged() {
    let env = Env::new("lenient_fb").await;
    let (worker, id) = worker_with_a_verdict(
        &env,
        &[
            ("DFA__FEEDBACK__SIGNING_KEY", KEY),
            ("DFA__FEEDBACK__REQUIRE_SIGNATURE", "false"),
        ],
    )
    .await;
    let key = id.to_string();
    env.produce_feedback(&key, &correction(id, "legacy-producer"))
        .await;
    let forged = correction(id, "mallory");
    let other = sign(OTHER_KEY.as_bytes(), &forged);
    env.produce_feedback_with(&key, &forged, &[("dfa-signature", &other)])
        .await;
    let signed = correction(id, "ana");
    let signature = sign(KEY.as_bytes(), &signed);
    env.produce_feedback_with(&key, &signed, &[("dfa-signature", &signature)])
        .await;

    let dead = env.read_topic(&env.dlq, 1, LONG).await;
    assert_eq!(dead.len(), 1, "worker log:\n{}", worker.stderr());
    assert_eq!(kind(&dead[0]), "unsigned");
    assert_eq!(dead[0].payload, forged);
    assert_eq!(
        reviewers(&env, 2, &worker).await,
        ["ana", "legacy-producer"]
    );
}
