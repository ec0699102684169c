//! The worker end to end: real broker (nisshi), real Postgres, real
//! llama.cpp on the tiny model, the real `dfa worker` process.
//! Needs `scripts/dev-up` (scripts/test runs it).

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::services::{request, Env};
use serde_json::Value;
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_every_request_gets_one_row_and_one_matching_result() {
    let env = Env::new("e2e").await;
    let mut worker = env.start_worker(&[]);
    let n: usize = 200;
    let mut ids = Vec::new();
    for i in 0..n as u32 {
        let id = Uuid::new_v4();
        ids.push(id);
        env.produce(&id.to_string(), &request(id, i % 7), &[]).await;
    }
    let rows = env
        .wait_count("SELECT count(*) FROM verdicts", n as i64, LONG)
        .await;
    assert_eq!(rows, n as i64, "worker log:\n{}", worker.stderr());

    let results = env
        .read_topic(&env.results, n, Duration::from_secs(60))
        .await;
    assert_eq!(results.len(), n);
    let stored: HashMap<Uuid, (String, f32)> = sqlx::query_as::<_, (Uuid, String, f32)>(
        "SELECT request_id, result::text, p_fake FROM verdicts",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(id, r, p)| (id, (r, p)))
    .collect();
    let mut seen = HashSet::new();
    for m in &results {
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        let id: Uuid = v["request_id"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            m.key.as_deref(),
            Some(id.to_string().as_str()),
            "results are keyed by request_id"
        );
        let (row, p_fake) = &stored[&id];
        assert_eq!(
            m.payload,
            row.as_bytes(),
            "the result message is the stored row"
        );
        assert_eq!(v["verdict"]["p_fake"].as_f64().unwrap() as f32, *p_fake);
        assert_eq!(v["tenant"], "acme");
        seen.insert(id);
    }
    assert_eq!(seen.len(), n, "one result per request");
    assert!(ids.iter().all(|id| seen.contains(id)));

    let (ok, log) = worker.terminate(Duration::from_secs(60));
    assert!(ok, "worker exit: {log}");
    assert_eq!(env.committed_total(), n as i64, "all offsets committed");
    // Same bytes, same sha256: reposts are recognisable.
    assert_eq!(env.count("SELECT count(*) FROM images").await, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_produced_three_times_is_one_row() {
    let env = Env::new("dup").await;
    let id = Uuid::new_v4();
    let payload = request(id, 3);
    for _ in 0..3 {
        env.produce(&id.to_string(), &payload, &[]).await;
    }
    let other = Uuid::new_v4();
    env.produce(&other.to_string(), &request(other, 4), &[])
        .await;
    let mut worker = env.start_worker(&[]);
    let results = env.read_topic(&env.results, 4, LONG).await;
    assert_eq!(results.len(), 4, "worker log:\n{}", worker.stderr());
    assert_eq!(env.count("SELECT count(*) FROM verdicts").await, 2);
    let copies: Vec<&Vec<u8>> = results
        .iter()
        .filter(|m| m.key.as_deref() == Some(id.to_string().as_str()))
        .map(|m| &m.payload)
        .collect();
    assert_eq!(copies.len(), 3);
    assert!(
        copies.iter().all(|p| *p == copies[0]),
        "republished results are identical"
    );
    let (ok, log) = worker.terminate(Duration::from_secs(60));
    assert!(ok, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_and_the_rest_processed() {
    use base64::Engine as _;
    let env = Env::new("poison").await;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let id = || Uuid::new_v4().to_string();
    let poison: Vec<(&str, Vec<u8>)> = vec![
        ("invalid_json", b"{this is not json".to_vec()),
        ("missing_field", serde_json::json!({"schema_version": 1, "image": {"base64": "aGk="}}).to_string().into_bytes()),
        (
            "schema_version",
            serde_json::json!({"schema_version": 99, "request_id": id(), "image": {"base64": "aGk="}}).to_string().into_bytes(),
        ),
        (
            "unsupported_format",
            serde_json::json!({"schema_version": 1, "request_id": id(), "image": {"base64": b64(b"definitely not an image")}})
                .to_string()
                .into_bytes(),
        ),
        (
            "fetch_failed",
            serde_json::json!({"schema_version": 1, "request_id": id(), "image": {"url": "http://127.0.0.1:9/face.jpg"}})
                .to_string()
                .into_bytes(),
        ),
    ];
    let mut good = Vec::new();
    for (i, (_, payload)) in poison.iter().enumerate() {
        let g = Uuid::new_v4();
        good.push(g);
        env.produce(&g.to_string(), &request(g, i as u32), &[])
            .await;
        env.produce("poison", payload, &[]).await;
    }
    let mut worker = env.start_worker(&[]);
    let dead = env.read_topic(&env.dlq, poison.len(), LONG).await;
    assert_eq!(dead.len(), poison.len(), "worker log:\n{}", worker.stderr());
    let rows = env
        .wait_count("SELECT count(*) FROM verdicts", good.len() as i64, LONG)
        .await;
    assert_eq!(rows, good.len() as i64);

    let kinds: HashSet<&str> = dead
        .iter()
        .map(|m| m.headers["dfa-error-kind"].as_str())
        .collect();
    let expected: HashSet<&str> = poison.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, expected);
    for m in &dead {
        assert_eq!(m.headers["dfa-original-topic"], env.requests);
        assert!(m.headers["dfa-original-offset"].parse::<i64>().is_ok());
        assert!(!m.headers["dfa-error-reason"].is_empty());
        let original = poison
            .iter()
            .find(|(k, _)| *k == m.headers["dfa-error-kind"])
            .unwrap();
        assert_eq!(
            m.payload, original.1,
            "the dead letter carries the original bytes"
        );
    }
    assert_eq!(
        env.count("SELECT count(*) FROM rejected_requests").await,
        poison.len() as i64
    );
    let (ok, log) = worker.terminate(Duration::from_secs(60));
    assert!(ok, "{log}");
    assert_eq!(
        env.committed_total(),
        2 * poison.len() as i64,
        "dead-lettered offsets are stored too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_loses_nothing_and_doubles_nothing() {
    let env = Env::new("crash").await;
    let n = 80;
    let mut ids = Vec::new();
    for i in 0..n {
        let id = Uuid::new_v4();
        ids.push(id);
        env.produce(&id.to_string(), &request(id, i), &[]).await;
    }
    let mut first = env.start_worker(&[]);
    let partial = env
        .wait_count("SELECT count(*) FROM verdicts", 10, LONG)
        .await;
    assert!(partial >= 10, "worker log:\n{}", first.stderr());
    first.kill();
    let after_kill = env.count("SELECT count(*) FROM verdicts").await;
    assert!(
        after_kill < n as i64,
        "the kill came too late to test anything"
    );

    let mut second = env.start_worker(&[]);
    let rows = env
        .wait_count("SELECT count(*) FROM verdicts", n as i64, LONG)
        .await;
    assert_eq!(rows, n as i64, "worker log:\n{}", second.stderr());
    // Requests finished both before and after the kill may be published twice.
    let keys = |ms: &[common::services::Received]| -> HashSet<String> {
        ms.iter().filter_map(|m| m.key.clone()).collect()
    };
    let results = env
        .read_topic_until(
            &env.results,
            |ms| keys(ms).len() >= n as usize,
            Duration::from_secs(60),
        )
        .await;
    let seen = keys(&results);
    let missing: Vec<&Uuid> = ids
        .iter()
        .filter(|id| !seen.contains(&id.to_string()))
        .collect();
    assert!(
        missing.is_empty(),
        "requests without a result: {missing:?} ({} results, {} distinct keys)",
        results.len(),
        seen.len()
    );
    let (ok, log) = second.terminate(Duration::from_secs(60));
    assert!(ok, "{log}");
    assert_eq!(
        env.count("SELECT count(DISTINCT request_id) FROM verdicts")
            .await,
        n as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_pauses_work_and_loses_nothing() {
    let env = Env::new("pgdown").await;
    let n = 60;
    let mut worker = env.start_worker(&[]);
    for i in 0..n / 2 {
        let id = Uuid::new_v4();
        env.produce(&id.to_string(), &request(id, i), &[]).await;
    }
    env.wait_count("SELECT count(*) FROM verdicts", 5, LONG)
        .await;

    // The outage: refuse new connections to the worker's database and cut the open ones.
    let admin = sqlx::PgPool::connect(&format!("{}/postgres", common::services::pg_base()))
        .await
        .unwrap();
    sqlx::query(&format!(
        "ALTER DATABASE {} ALLOW_CONNECTIONS false",
        env.name
    ))
    .execute(&admin)
    .await
    .unwrap();
    env.pool.close().await;
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&env.name)
        .execute(&admin)
        .await
        .unwrap();
    for i in n / 2..n {
        let id = Uuid::new_v4();
        env.produce(&id.to_string(), &request(id, i), &[]).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    sqlx::query(&format!(
        "ALTER DATABASE {} ALLOW_CONNECTIONS true",
        env.name
    ))
    .execute(&admin)
    .await
    .unwrap();

    let pool = sqlx::PgPool::connect(&env.db_url).await.unwrap();
    let deadline = std::time::Instant::now() + LONG;
    let mut rows = 0;
    while std::time::Instant::now() < deadline {
        rows = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM verdicts")
            .fetch_one(&pool)
            .await
            .unwrap();
        if rows >= n as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(rows, n as i64, "worker log:\n{}", worker.stderr());
    let results = env
        .read_topic(&env.results, n as usize, Duration::from_secs(60))
        .await;
    assert_eq!(results.len(), n as usize);
    assert_eq!(
        env.read_topic(&env.dlq, 1, Duration::from_secs(2))
            .await
            .len(),
        0,
        "nothing dead-lettered"
    );
    let (ok, log) = worker.terminate(Duration::from_secs(60));
    assert!(ok, "{log}");
    assert!(
        log.contains("retrying"),
        "the outage was seen and retried: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_work_in_flight_exits_cleanly_storing_only_finished_offsets() {
    let env = Env::new("term").await;
    let n = 120;
    for i in 0..n {
        let id = Uuid::new_v4();
        env.produce(&id.to_string(), &request(id, i), &[]).await;
    }
    // A short grace period, so some requests are surely unfinished at the end.
    let mut worker = env.start_worker(&[("DFA__WORKER__SHUTDOWN_GRACE_MS", "300")]);
    env.wait_count("SELECT count(*) FROM verdicts", 5, LONG)
        .await;
    let (ok, log) = worker.terminate(Duration::from_secs(60));
    assert!(ok, "exit status after SIGTERM: {log}");
    let rows = env.count("SELECT count(*) FROM verdicts").await;
    assert!(
        rows < n as i64,
        "everything finished before the signal; nothing tested"
    );
    // Below each partition's committed offset, every message has its verdict.
    for (partition, committed) in env.committed() {
        let done = env
            .count(&format!(
                "SELECT count(*) FROM verdicts WHERE source_partition = {partition} AND source_offset < {committed}"
            ))
            .await;
        assert_eq!(done, committed, "partition {partition}: offset {committed} committed with only {done} verdicts below it");
    }
    // A restarted worker finishes the rest.
    let mut again = env.start_worker(&[]);
    let rows = env
        .wait_count("SELECT count(*) FROM verdicts", n as i64, LONG)
        .await;
    assert_eq!(rows, n as i64, "{}", again.stderr());
    let (ok, log) = again.terminate(Duration::from_secs(60));
    assert!(ok, "{log}");
}

/// A stand-in OTLP collector: accepts HTTP posts, answers 200, records the
/// request lines it saw.
async fn collector() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 16];
                let mut got = Vec::new();
                while let Ok(n) = sock.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            record
                                .lock()
                                .unwrap()
                                .push(text.lines().next().unwrap_or("").to_string());
                            let _ = sock
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                                .await;
                            got.clear();
                        }
                    }
                }
            });
        }
    });
    (format!("http://{addr}/v1/traces"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_continues_onto_the_result_and_spans_reach_the_otlp_endpoint() {
    let env = Env::new("trace").await;
    let (endpoint, seen) = collector().await;
    let mut worker = env.start_worker(&[("DFA__TELEMETRY__OTLP_ENDPOINT", endpoint.as_str())]);
    let id = Uuid::new_v4();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    env.produce(
        &id.to_string(),
        &request(id, 1),
        &[("traceparent", parent.as_str())],
    )
    .await;
    let results = env.read_topic(&env.results, 1, LONG).await;
    assert_eq!(results.len(), 1, "worker log:\n{}", worker.stderr());
    let tp = results[0]
        .headers
        .get("traceparent")
        .expect("the result carries a traceparent");
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!(parts[1], trace_id, "same trace");
    assert_ne!(
        parts[2], "00f067aa0ba902b7",
        "the worker's own span is the new parent"
    );
    let (ok, log) = worker.terminate(Duration::from_secs(60));
    assert!(ok, "{log}");
    // Shutdown flushes the batch exporter.
    let lines = seen.lock().unwrap().clone();
    assert!(
        lines.iter().any(|l| l.starts_with("POST /v1/traces")),
        "collector saw: {lines:?}"
    );
}
