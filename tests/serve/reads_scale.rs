//! Reads at scale: an export of 100 000 rows streams in bounded memory, and
//! on a million verdicts the filtered pages use migration 0005's indexes.

use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use dfa::domain::access::Role;
use dfa::domain::verdict_query::{Keyset, VerdictFilter};
use dfa::domain::{ForgeryType, Label};
use dfa::store::Store;
use futures::StreamExt;
use reqwest::StatusCode;
use sqlx::PgPool;
use uuid::Uuid;

use crate::common::services::Env;
use crate::harness::Harness;

fn t0() -> DateTime<Utc> {
    "2026-03-10T12:00:00Z".parse().unwrap()
}

/// `n` verdicts in one `INSERT … SELECT generate_series`, one a second back
/// from `t0` (row i at t0 - i s): a third fake (types in turn), tenants
/// `tenant-0`…`tenant-6` but `rare` for every 1000th, adapter `ad1` on
/// even rows, p_fake spread over [0, 1), and an explanation of
/// `explanation_chars` characters.
async fn generate(pool: &PgPool, n: i64, explanation_chars: i32) {
    sqlx::query(
        "INSERT INTO images (sha256, byte_size, first_source) VALUES ($1, 0, 'gen') ON CONFLICT DO NOTHING",
    )
    .bind("ef".repeat(32))
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO verdicts (request_id, tenant, label, p_fake, forgery_type, type_scores, artifacts, \
             explanation, answers, image_sha256, image_source, base_model_sha256, mmproj_sha256, adapter_id, \
             processing_ms, timings_ms, source_topic, source_partition, source_offset, result, created_at) \
         SELECT lpad(to_hex(i), 32, '0')::uuid, \
                CASE WHEN i % 1000 = 0 THEN 'rare' ELSE 'tenant-' || (i % 7) END, \
                CASE WHEN i % 3 = 0 THEN 'fake' ELSE 'real' END, \
                ((i::bigint * 7919) % 1000) / 1000.0, \
                CASE WHEN i % 3 = 0 THEN (ARRAY['face_swap', 'face_reenactment', 'face_editing', \
                    'entire_face_synthesis'])[1 + (i / 3) % 4] END, \
                '{}'::jsonb, '[]'::jsonb, \
                CASE WHEN $3 > 0 THEN left('1. Eyes: \"reflections\", differ; ' || repeat('x', $3), $3) END, \
                '[]'::jsonb, $2, 'gen', 'b', 'm', CASE WHEN i % 2 = 0 THEN 'ad1' END, 1.0, '{}'::jsonb, \
                'gen', 0, i, '{}'::json, $4 - make_interval(secs => i) \
         FROM generate_series(1, $1) AS i",
    )
    .bind(n)
    .bind("ef".repeat(32))
    .bind(explanation_chars)
    .bind(t0())
    .execute(pool)
    .await
    .unwrap();
}

/// Resident memory of this process (the API and the client), in bytes.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .expect("VmRSS")
}

#[tokio::test]
async fn an_export_of_100_000_rows_streams_in_bounded_memory() {
    let h = Harness::start("reads_export").await;
    let token = h.token(Role::Analyst, "bo", None).await;
    generate(&h.env.pool, 100_000, 400).await;

    // A small export first, so what is made once (connections, buffers)
    // is not counted below.
    let r = h
        .http
        .get(h.url("/api/export?format=csv&tenant=rare"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap().lines().count(), 1 + 100);

    let before = rss();
    let r = h
        .http
        .get(h.url("/api/export?format=csv"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"],
        "text/csv; charset=utf-8; header=present"
    );
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("verdicts.csv"));
    let mut body = r.bytes_stream();
    let (mut bytes, mut lines, mut peak) = (0u64, 0u64, before);
    let mut head = Vec::new();
    let mut tail = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("the body streams to its end");
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        if head.len() < 4096 {
            head.extend_from_slice(&chunk[..chunk.len().min(4096)]);
        }
        tail.extend_from_slice(&chunk);
        if tail.len() > 8192 {
            tail.drain(..tail.len() - 8192);
        }
        peak = peak.max(rss());
    }
    assert_eq!(lines, 1 + 100_000, "a header and every row");
    let head = String::from_utf8(head).unwrap();
    let mut records = head.split("\r\n");
    assert_eq!(
        records.next(),
        Some(
            "request_id,created_at,tenant,status,label,p_fake,forgery_type,face_count,adapter_id,\
             image_sha256,corrected,correction_label,correction_forgery_type,disagreement,explanation"
        )
    );
    // Row 1 is the newest (t0 - 1 s); its explanation holds a comma and
    // quotes, so it is quoted with the quotes doubled.
    let first = records.next().unwrap();
    assert!(
        first.contains(",2026-03-10T11:59:59.000000Z,tenant-1,analysed,real,"),
        "{first}"
    );
    assert!(
        first.contains(",\"1. Eyes: \"\"reflections\"\", differ; xxx"),
        "{first}"
    );
    let tail = String::from_utf8_lossy(&tail);
    assert!(
        tail.trim_end()
            .lines()
            .last()
            .unwrap()
            .contains("2026-03-09T08:13:20.000000Z"),
        "the oldest (t0 - 100 000 s) comes last"
    );

    let grown = peak.saturating_sub(before);
    eprintln!(
        "export: {} rows, {:.1} MiB streamed; RSS grew {:.1} MiB",
        lines - 1,
        bytes as f64 / 1048576.0,
        grown as f64 / 1048576.0
    );
    assert!(
        bytes > 40 << 20,
        "{bytes} bytes: the rows are big enough to tell"
    );
    assert!(
        grown < bytes / 4,
        "RSS grew {grown} bytes for an export of {bytes}: rows are being held"
    );

    // JSON lines, filtered: every matching row, each a list item.
    let r = h
        .http
        .get(h.url("/api/export?format=jsonl&label=fake&adapter=ad1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text = r.text().await.unwrap();
    let items: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    // i % 6 == 0 for i in 1..=100 000.
    assert_eq!(items.len(), 16_666);
    assert!(items
        .iter()
        .all(|i| i["label"] == "fake" && i["adapter_id"] == "ad1"));
    assert_eq!(items[0]["created_at"], "2026-03-10T11:59:54Z");
    h.stop().await;
}

/// Drops the secondary indexes of `verdicts`, runs `load`, and builds them
/// again from their own definitions (pg_indexes): a bulk load then costs a
/// sort per index instead of a million insertions each.
async fn with_indexes_rebuilt(pool: &PgPool, n: i64) {
    let defs: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname, indexdef FROM pg_indexes \
         WHERE tablename = 'verdicts' AND indexname <> 'verdicts_pkey'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(
        defs.iter()
            .any(|(name, _)| name == "verdicts_label_created_at_request_id"),
        "migration 0005 ran: {defs:?}"
    );
    for (name, _) in &defs {
        // Names from the catalogue, not from input.
        sqlx::query(&format!("DROP INDEX \"{name}\""))
            .execute(pool)
            .await
            .unwrap();
    }
    generate(pool, n, 0).await;
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL maintenance_work_mem = '256MB'")
        .execute(&mut *tx)
        .await
        .unwrap();
    for (_, def) in &defs {
        sqlx::query(def).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn filtered_pages_of_a_million_verdicts_use_an_index() {
    let env = Env::new("reads_plan").await;
    let started = Instant::now();
    with_indexes_rebuilt(&env.pool, 1_000_000).await;
    // A correction on every 997th verdict.
    sqlx::query(
        "INSERT INTO corrections (request_id, reviewer, label, created_at, source_topic, source_partition, source_offset) \
         SELECT lpad(to_hex(i), 32, '0')::uuid, 'r', 'real', now(), 't', 0, i FROM generate_series(1, 1000000, 997) AS i",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE verdicts")
        .execute(&env.pool)
        .await
        .unwrap();
    sqlx::query("ANALYZE corrections")
        .execute(&env.pool)
        .await
        .unwrap();
    eprintln!(
        "a million verdicts in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let store = Store::connect(&env.db_url, 2).await.unwrap();
    let since = Some(t0() - Duration::days(3));
    let cursor = Some(Keyset {
        created_at: t0() - Duration::days(2),
        request_id: Uuid::nil(),
    });
    let cases: [(&str, VerdictFilter, Option<Keyset>, Option<&str>); 6] = [
        (
            "label=fake&since",
            VerdictFilter {
                label: Some(Label::Fake),
                since,
                ..VerdictFilter::default()
            },
            None,
            None,
        ),
        (
            "forgery_type&since, a later page",
            VerdictFilter {
                forgery_type: Some(ForgeryType::FaceSwap),
                since,
                ..VerdictFilter::default()
            },
            cursor,
            None,
        ),
        (
            "a rare tenant",
            VerdictFilter {
                tenant: Some("rare".into()),
                ..VerdictFilter::default()
            },
            None,
            Some("verdicts_tenant_created_at_request_id"),
        ),
        (
            "a rare tenant, a later page",
            VerdictFilter {
                tenant: Some("rare".into()),
                ..VerdictFilter::default()
            },
            cursor,
            Some("verdicts_tenant_created_at_request_id"),
        ),
        (
            "adapter&p_fake",
            VerdictFilter {
                adapter: Some("ad1".into()),
                min_p_fake: Some(0.9),
                ..VerdictFilter::default()
            },
            None,
            None,
        ),
        (
            "corrected",
            VerdictFilter {
                corrected: Some(true),
                ..VerdictFilter::default()
            },
            None,
            None,
        ),
    ];
    for (name, filter, after, index) in cases {
        let plan = store
            .explain_verdict_page(&filter, after, 51)
            .await
            .unwrap();
        eprintln!("{name}:\n{plan}\n");
        assert!(plan.contains("Index"), "{name}: {plan}");
        assert!(!plan.contains("Seq Scan on verdicts"), "{name}: {plan}");
        if let Some(index) = index {
            assert!(plan.contains(index), "{name} uses {index}: {plan}");
        }
        let t = Instant::now();
        let rows = store.verdict_page(&filter, after, 51).await.unwrap();
        eprintln!("{name}: {} rows in {:?}", rows.len(), t.elapsed());
        assert!(!rows.is_empty(), "{name}");
    }
}
