//! Issue 12 in the worker: every face of an upload is analysed and stored
//! once (a redelivery adds no row), an upload without a face is stored as
//! `no_face`, and the same bytes seen again reuse the stored analysis
//! instead of reaching the model. In-process over a fake backend that
//! counts its jobs, against this test's database and topics.

use crate::common;

use std::time::Duration;

use base64::Engine as _;
use common::fake_backend::FakeBackend;
use common::services::Env;
use dfa::domain::{FaceBox, FaceMode};
use dfa::store::NewVerdict;
use dfa::worker::metrics::Metrics;
use dfa::worker::process::Outcome;
use dfa::worker::retry::RetryPolicy;
use dfa::worker::writer::persist_batch;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::inproc::{message, processor_with, settings};

const LONG: Duration = Duration::from_secs(60);

fn request_for(id: Uuid, img: &image::RgbImage) -> Vec<u8> {
    let png = common::encode(img, image::ImageFormat::Png);
    serde_json::json!({
        "schema_version": 1,
        "request_id": id,
        "image": {"base64": base64::engine::general_purpose::STANDARD.encode(png)},
        "tenant": "acme",
    })
    .to_string()
    .into_bytes()
}

async fn detecting(
    env: &Env,
    backend: FakeBackend,
    reuse: bool,
) -> dfa::worker::process::Processor<FakeBackend> {
    let mut s = settings(env, &env.dir.join("images"));
    s.faces.mode = FaceMode::Detect;
    s.faces.reuse_reposts = reuse;
    processor_with(env, backend, s).await
}

type FaceRow = (i16, i32, i32, i32, i32, f32);

async fn face_rows(env: &Env, id: Uuid) -> Vec<FaceRow> {
    sqlx::query_as("SELECT face_index, x, y, w, h, p_fake FROM faces WHERE request_id = $1 ORDER BY face_index")
        .bind(id)
        .fetch_all(&env.pool)
        .await
        .expect("faces rows")
}

/// Each pasted face has exactly one stored box over it.
fn assert_boxes_where_pasted(rows: &[FaceRow]) {
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (x, y, w, h) in common::TWO_FACES_AT {
        let pasted = FaceBox {
            x,
            y,
            w,
            h,
            score: 0.0,
        };
        let near = rows
            .iter()
            .filter(|r| {
                let b = FaceBox {
                    x: r.1 as u32,
                    y: r.2 as u32,
                    w: r.3 as u32,
                    h: r.4 as u32,
                    score: 0.0,
                };
                b.iou(&pasted) >= 0.5
            })
            .count();
        assert_eq!(
            near, 1,
            "one box over the face pasted at {pasted:?}: {rows:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_face_is_stored_once_however_often_the_request_comes() {
    let env = Env::new("faces_once").await;
    let p = detecting(&env, FakeBackend::scoring(0.8), true).await;
    let id = Uuid::new_v4();
    let payload = request_for(id, &common::two_faces());
    assert_eq!(
        p.handle(&message(&env.requests, 0, payload.clone())).await,
        Outcome::Done
    );
    assert_eq!(p.backend.calls(), 2, "one engine job per face");
    let rows = face_rows(&env, id).await;
    assert_boxes_where_pasted(&rows);

    // Redelivered: answered from what was stored, nothing added.
    assert_eq!(
        p.handle(&message(&env.requests, 1, payload)).await,
        Outcome::Duplicate
    );
    assert_eq!(face_rows(&env, id).await, rows);
    assert_eq!(p.backend.calls(), 2);

    // Two deliveries analysed at once, both reaching the writer: the later
    // insert finds the verdict stored and adds no faces.
    let results = env.read_topic(&env.results, 2, LONG).await;
    let published: Value = serde_json::from_slice(&results[0].payload).unwrap();
    assert_eq!(published["verdict"]["face_count"], 2);
    assert_eq!(
        published["verdict"]["faces"].as_array().map(Vec::len),
        Some(2)
    );
    let mut verdict: dfa::domain::Verdict =
        serde_json::from_value(published["verdict"].clone()).expect("a verdict");
    // The other delivery's analysis differs (another score, a third face):
    // were its faces written, the rows would change.
    verdict.faces[0].p_fake = 0.01;
    let mut third = verdict.faces[1].clone();
    third.index = 2;
    verdict.faces.push(third);
    let again = NewVerdict {
        verdict,
        tenant: Some("acme".into()),
        metadata: serde_json::json!({}),
        image_sha256: published["image"]["sha256"].as_str().unwrap().to_string(),
        image_bytes: 1,
        image_source: "inline".into(),
        request_sha256: "0".repeat(64),
        source: dfa::store::Source {
            topic: env.requests.clone(),
            partition: 0,
            offset: 9,
        },
        result: "{}".into(),
    };
    let retry = RetryPolicy::new(Duration::from_millis(10), Duration::from_millis(50));
    let written = persist_batch(
        &p.store,
        &Metrics::new(),
        vec![again],
        &retry,
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(written.len(), 1);
    assert_eq!(face_rows(&env, id).await, rows);
    assert_eq!(env.count("SELECT count(*) FROM faces").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_without_a_face_is_stored_as_no_face() {
    let env = Env::new("faces_none").await;
    let p = detecting(&env, FakeBackend::scoring(0.8), true).await;
    let id = Uuid::new_v4();
    let page = common::text_page();
    assert_eq!(
        p.handle(&message(&env.requests, 0, request_for(id, &page)))
            .await,
        Outcome::Done
    );
    assert_eq!(p.backend.calls(), 0, "nothing to screen");
    let (status, p_fake, label, count): (String, Option<f32>, Option<String>, Option<i32>) =
        sqlx::query_as(
            "SELECT status, p_fake, label, face_count FROM verdicts WHERE request_id = $1",
        )
        .bind(id)
        .fetch_one(&env.pool)
        .await
        .expect("stored");
    assert_eq!(
        (status.as_str(), p_fake, label, count),
        ("no_face", None, None, Some(0))
    );
    let results = env.read_topic(&env.results, 1, LONG).await;
    let published: Value = serde_json::from_slice(&results[0].payload).unwrap();
    assert_eq!(published["verdict"]["status"], "no_face");
    assert!(published["verdict"]["p_fake"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repost_reuses_the_stored_analysis_unless_turned_off() {
    let env = Env::new("faces_repost").await;
    let p = detecting(&env, FakeBackend::scoring(0.7), true).await;
    let picture = common::two_faces();
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    assert_eq!(
        p.handle(&message(&env.requests, 0, request_for(first, &picture)))
            .await,
        Outcome::Done
    );
    assert_eq!(p.backend.calls(), 2);
    assert_eq!(
        p.handle(&message(&env.requests, 1, request_for(second, &picture)))
            .await,
        Outcome::Done
    );
    assert_eq!(p.backend.calls(), 2, "the repost never reached the model");
    let (reused_from,): (Option<Uuid>,) =
        sqlx::query_as("SELECT reused_from FROM verdicts WHERE request_id = $1")
            .bind(second)
            .fetch_one(&env.pool)
            .await
            .expect("stored");
    assert_eq!(reused_from, Some(first));
    assert_eq!(face_rows(&env, second).await, face_rows(&env, first).await);
    let results = env.read_topic(&env.results, 2, LONG).await;
    let reposted = results
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.payload).unwrap())
        .find(|v| v["request_id"] == second.to_string())
        .expect("the repost's result");
    assert_eq!(reposted["verdict"]["reused_from"], first.to_string());

    // With reuse turned off, the same bytes are analysed again.
    let off = detecting(&env, FakeBackend::scoring(0.7), false).await;
    let third = Uuid::new_v4();
    assert_eq!(
        off.handle(&message(&env.requests, 2, request_for(third, &picture)))
            .await,
        Outcome::Done
    );
    assert_eq!(off.backend.calls(), 2, "both faces analysed again");
}
