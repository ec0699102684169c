//! Issue 9: an honest idempotency key (defect 7), durable delivery counts
//! (defect 4) and statements within the bind limit (defect 10). A request_id
//! reused for other content is dead-lettered as `request_id_conflict`, never
//! answered with the first request's verdict; a message whose earlier
//! deliveries all died is dead-lettered as `crash_loop` before analysis;
//! batches too large for one statement are split. In-process over a fake
//! backend, against this test's database and topics.

use crate::common;

use std::time::Duration;

use common::fake_backend::FakeBackend;
use common::services::{request, Env, Received};
use dfa::store::{NewVerdict, Source, Store};
use dfa::worker::metrics::Metrics;
use dfa::worker::process::{Incoming, Outcome};
use dfa::worker::retry::RetryPolicy;
use dfa::worker::writer::{persist_batch, WriteError};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(60);

use crate::inproc::{message, processor};

/// `payload` with one top-level field replaced.
fn with(payload: &[u8], field: &str, value: Value) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(payload).unwrap();
    v[field] = value;
    v.to_string().into_bytes()
}

fn kinds(dead: &[Received]) -> Vec<&str> {
    dead.iter()
        .map(|m| m.headers["dfa-error-kind"].as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_request_id_with_other_content_is_dead_lettered_as_a_conflict() {
    let env = Env::new("idem_conflict").await;
    let p = processor(&env, FakeBackend::scoring(0.9), &env.dir.join("images")).await;
    let id = Uuid::new_v4();
    let first = request(id, 1);
    let requests = &env.requests;
    assert_eq!(
        p.handle(&message(requests, 0, first.clone())).await,
        Outcome::Done
    );
    let other_tenant = with(&first, "tenant", "globex".into());
    let other_image = request(id, 2);
    let other_metadata = with(&first, "metadata", serde_json::json!({"seed": 99}));
    for (offset, payload) in [(1, other_tenant), (2, other_image), (3, other_metadata)] {
        assert_eq!(
            p.handle(&message(requests, offset, payload)).await,
            Outcome::DeadLettered,
            "offset {offset}"
        );
    }
    assert_eq!(p.backend.calls(), 1, "a conflict is never analysed");
    // Publishing is awaited before `handle` returns: whatever the results
    // topic was going to carry, it carries now.
    assert_eq!(
        env.topic_len(&env.results),
        1,
        "only the first request's verdict was published"
    );
    let results = env.read_topic(&env.results, 1, LONG).await;
    let published: Value = serde_json::from_slice(&results[0].payload).unwrap();
    assert_eq!(
        (&published["tenant"], &published["metadata"]["seed"]),
        (&Value::from("acme"), &Value::from(1))
    );
    let dead = env.read_topic(&env.dlq, 3, LONG).await;
    assert_eq!(kinds(&dead), ["request_id_conflict"; 3]);
    assert!(dead
        .iter()
        .all(|m| m.headers["dfa-error-reason"].contains(&id.to_string())));
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM rejected_requests WHERE error_kind = 'request_id_conflict' AND request_id = '{id}'"
        ))
        .await,
        3
    );
    assert_eq!(env.count("SELECT count(*) FROM verdicts").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_request_resent_is_a_duplicate_analysed_once() {
    use base64::Engine as _;
    let env = Env::new("idem_dup").await;
    let p = processor(&env, FakeBackend::scoring(0.2), &env.dir.join("images")).await;
    let id = Uuid::new_v4();
    let first = request(id, 5);
    assert_eq!(
        p.handle(&message(&env.requests, 0, first.clone())).await,
        Outcome::Done
    );
    // The same request as another client would write it: other key order,
    // whitespace, the base64 wrapped, the default tasks spelled out.
    let v: Value = serde_json::from_slice(&first).unwrap();
    let png = base64::engine::general_purpose::STANDARD
        .decode(v["image"]["base64"].as_str().unwrap())
        .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(png);
    let resent = format!(
        r#"{{ "metadata": {{ "seed": 5 }}, "tasks": ["classification", "detection"],
             "image": {{ "base64": "  {b64}\n" }}, "tenant": "acme",
             "request_id": "{id}", "schema_version": 1 }}"#
    );
    assert_eq!(
        p.handle(&message(&env.requests, 1, resent.into_bytes()))
            .await,
        Outcome::Duplicate
    );
    assert_eq!(p.backend.calls(), 1, "the resend was not analysed");
    let results = env.read_topic(&env.results, 2, LONG).await;
    assert_eq!(results.len(), 2);
    assert_eq!(
        results[0].payload, results[1].payload,
        "republished as stored"
    );
    assert_eq!(env.topic_len(&env.dlq), 0);
}

/// A verdict row; `sha` names its request's content.
fn row(id: Uuid, sha: char, answers: usize) -> NewVerdict {
    use dfa::engine::{Analysis, EngineTimings};
    let analysis = Analysis {
        p_fake: Some(0.3),
        type_scores: None,
        explanation: None,
        answers: Vec::new(),
        detection_logits: None,
        generated_tokens: 0,
        reused_tokens: 0,
        model: dfa::domain::ModelIdentity {
            base_sha256: "b".repeat(64),
            mmproj_sha256: "d".repeat(64),
            adapter: None,
        },
        timings: EngineTimings::default(),
    };
    let mut verdict = dfa::engine::analyze::assemble_verdict(id, analysis, 0.5);
    verdict.answers = (0..answers)
        .map(|i| dfa::domain::Answer {
            question: format!("question {i}?"),
            answer: format!("answer {i}."),
        })
        .collect();
    NewVerdict {
        verdict,
        tenant: Some(format!("tenant-{sha}")),
        metadata: serde_json::json!({}),
        image_sha256: "a".repeat(64),
        image_bytes: 1,
        image_source: "inline".into(),
        request_sha256: sha.to_string().repeat(64),
        source: Source {
            topic: "t".into(),
            partition: 0,
            offset: 0,
        },
        result: format!(r#"{{"request_id":"{id}","content":"{sha}"}}"#),
    }
}

async fn persist(store: &Store, batch: Vec<NewVerdict>) -> Vec<Result<String, WriteError>> {
    let retry = RetryPolicy::new(Duration::from_millis(10), Duration::from_millis(50));
    persist_batch(
        store,
        &Metrics::new(),
        batch,
        &retry,
        &CancellationToken::new(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_requests_under_one_id_the_later_insert_is_a_conflict() {
    // Two requests under one id that both passed the lookup (neither was
    // stored yet) meet at the insert: in one batch, or in two.
    let env = Env::new("idem_race").await;
    let store = Store::connect(&env.db_url, 2).await.expect("connect");
    let (id, other) = (Uuid::new_v4(), Uuid::new_v4());
    let results = persist(
        &store,
        vec![
            row(id, 'a', 0),
            row(id, 'b', 0),
            row(id, 'a', 0),
            row(other, 'c', 0),
        ],
    )
    .await;
    let first = row(id, 'a', 0).result;
    assert_eq!(results[0], Ok(first.clone()), "the first row is stored");
    assert!(
        matches!(&results[1], Err(WriteError::Conflict(r)) if r.contains(&id.to_string())),
        "{:?}",
        results[1]
    );
    assert_eq!(results[2], Ok(first.clone()), "same content: a duplicate");
    assert_eq!(results[3], Ok(row(other, 'c', 0).result));

    let later = persist(&store, vec![row(id, 'b', 0), row(id, 'a', 0)]).await;
    assert!(
        matches!(later[0], Err(WriteError::Conflict(_))),
        "{later:?}"
    );
    assert_eq!(later[1], Ok(first.clone()));

    // A row stored before request hashes were kept matches any request.
    sqlx::query("UPDATE verdicts SET request_sha256 = NULL WHERE request_id = $1")
        .bind(id)
        .execute(&env.pool)
        .await
        .unwrap();
    assert_eq!(persist(&store, vec![row(id, 'b', 0)]).await, [Ok(first)]);
    assert_eq!(env.count("SELECT count(*) FROM verdicts").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_deliveries_kept_dying_is_dead_lettered_before_analysis() {
    let env = Env::new("idem_crash").await;
    let p = processor(&env, FakeBackend::scoring(0.9), &env.dir.join("images")).await;
    let max = p.settings.worker.max_attempts as usize;
    assert!(max >= 2, "the test needs room below the limit");
    let at = |topic: &str, offset: i64| message(topic, offset, request(Uuid::new_v4(), 1));
    // Crashes are simulated by counting deliveries that never finished.
    let crash = |msg: &Incoming, times: usize| {
        let sources = vec![msg.source.clone(); times];
        let store = p.store.clone();
        async move { store.note_deliveries(&sources).await.unwrap() }
    };

    let looping = at(&env.requests, 7);
    let counted = crash(&looping, max).await;
    assert_eq!(counted, (1..=max as i32).collect::<Vec<_>>());
    assert_eq!(p.handle(&looping).await, Outcome::DeadLettered);
    assert_eq!(p.backend.calls(), 0, "a crash loop is not analysed again");

    let survivor = at(&env.requests, 8);
    crash(&survivor, max - 1).await;
    assert_eq!(p.handle(&survivor).await, Outcome::Done, "within the limit");
    // Another picture: the same bytes would be a repost, answered without
    // the model (faces.reuse_reposts).
    let fresh = message(&env.requests, 9, request(Uuid::new_v4(), 2));
    assert_eq!(p.handle(&fresh).await, Outcome::Done);
    assert_eq!(p.backend.calls(), 2);
    let feedback = message(&env.feedback, 3, b"{}".to_vec());
    crash(&feedback, max).await;
    assert_eq!(p.handle(&feedback).await, Outcome::DeadLettered);

    let dead = env.read_topic(&env.dlq, 2, LONG).await;
    assert_eq!(kinds(&dead), ["crash_loop"; 2]);
    let reason = &dead[0].headers["dfa-error-reason"];
    assert!(
        reason.contains(&format!("delivery {}", max + 1)),
        "{reason}"
    );
    assert_eq!(
        env.count("SELECT count(*) FROM rejected_requests WHERE error_kind = 'crash_loop'")
            .await,
        2
    );
    // A normal single delivery is counted once, far from the limit.
    let attempts: i32 = sqlx::query_scalar(
        "SELECT attempts FROM deliveries WHERE topic = $1 AND partition = 0 AND \"offset\" = 9",
    )
    .bind(&env.requests)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_beyond_the_bind_limit_are_split_into_statements() {
    let env = Env::new("idem_binds").await;
    let store = Store::connect(&env.db_url, 2).await.expect("connect");
    // 300 verdicts × 32 answers = 19 200 turns × 4 binds = 76 800 > 65 535.
    let ids: Vec<Uuid> = (0..300).map(|_| Uuid::new_v4()).collect();
    let batch: Vec<NewVerdict> = ids.iter().map(|id| row(*id, 'e', 32)).collect();
    // Bounded: a statement over the limit used to fail as "unavailable"
    // (no SQLSTATE) and be retried for ever.
    let results = tokio::time::timeout(Duration::from_secs(30), persist(&store, batch))
        .await
        .expect("the batch is stored, not retried for ever");
    assert!(results.iter().all(Result::is_ok), "{:?}", results[0]);
    assert_eq!(
        env.count("SELECT count(*) FROM conversation_messages")
            .await,
        300 * 64
    );
    // 17 000 sources × 4 binds = 68 000 > 65 535, counted all or nothing.
    let sources: Vec<Source> = (0..17_000)
        .map(|offset| Source {
            topic: "binds".into(),
            partition: 1,
            offset,
        })
        .collect();
    let once = store.note_deliveries(&sources).await.expect("one pass");
    assert!(once.iter().all(|n| *n == 1));
    let twice = store.note_deliveries(&sources).await.expect("again");
    assert!(twice.iter().all(|n| *n == 2));
    assert_eq!(
        store
            .forget_deliveries_before(Duration::from_secs(3600))
            .await
            .unwrap(),
        0,
        "recent counts are kept"
    );
    assert_eq!(
        store
            .forget_deliveries_before(Duration::ZERO)
            .await
            .unwrap(),
        17_000
    );
}
