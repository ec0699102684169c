//! The pipeline end to end: the real `dfa worker` process on the tiny model,
//! then the `Processor` in-process over a fake backend (its dead-letter,
//! duplicate and abandon decisions, in seconds).

use crate::common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::child::{log_field, metric_sum};
use common::fake_backend::FakeBackend;
use common::services::{request, Env};
use dfa::engine::EngineError;
use dfa::store::{Source, Store};
use dfa::worker::metrics::Metrics;
use dfa::worker::process::Outcome;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
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
    // The fetch_failed case needs its loopback URL let through the fetch policy.
    let mut worker = env.start_worker(&[
        ("DFA__WORKER__FETCH_ALLOW_HOSTS[0]", "127.0.0.1"),
        ("DFA__WORKER__FETCH_ALLOW_HTTP", "true"),
    ]);
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
async fn one_nul_bearing_request_among_fifty_good_ones_is_the_only_dead_letter() {
    // A NUL is valid JSON but cannot be stored in TEXT/JSONB. It used to get
    // as far as the write batch and fail the good rows batched with it; now it
    // is refused at parse time (batch isolation has its own in-process test).
    let env = Env::new("nul").await;
    let bad = Uuid::new_v4();
    let mut payload: serde_json::Value = serde_json::from_slice(&request(bad, 99)).unwrap();
    payload["metadata"] = serde_json::json!({"note": "tab\u{0}separated"});
    let good: Vec<Uuid> = (0..50).map(|_| Uuid::new_v4()).collect();
    for (i, g) in good.iter().enumerate() {
        if i == 25 {
            env.produce(&bad.to_string(), payload.to_string().as_bytes(), &[])
                .await;
        }
        env.produce(&g.to_string(), &request(*g, i as u32), &[])
            .await;
    }
    let worker = env.start_worker(&[]);
    let rows = env
        .wait_count("SELECT count(*) FROM verdicts", good.len() as i64, LONG)
        .await;
    assert_eq!(rows, 50, "worker log:\n{}", worker.stderr());
    let dead = env.read_topic(&env.dlq, 1, LONG).await;
    assert_eq!(dead.len(), 1, "worker log:\n{}", worker.stderr());
    assert_eq!(dead[0].headers["dfa-error-kind"], "invalid_field");
    let dead_lettered = worker
        .wait_metric("dfa_dead_lettered_total", 1.0, LONG)
        .await;
    assert_eq!(
        dead_lettered, 1.0,
        "only the NUL-bearing request is dead-lettered"
    );
    assert!(dead[0].headers["dfa-error-reason"].contains("metadata"));
    let stored: i64 = env
        .count(&format!(
            "SELECT count(*) FROM verdicts WHERE request_id = '{bad}'"
        ))
        .await;
    assert_eq!(stored, 0);
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
    // The kill must land while some verdicts are stored whose offsets are
    // not committed (redelivered: they must not double) and some requests
    // have no verdict yet (they must not be lost). The worker is frozen
    // while that is checked, so the state checked is the state killed.
    let deadline = Instant::now() + LONG;
    let redelivered = loop {
        if env.count("SELECT count(*) FROM verdicts").await > 0 {
            first.pause();
            let stored = env.count("SELECT count(*) FROM verdicts").await;
            let beyond = env.verdicts_beyond_committed().await;
            if beyond > 0 && stored < n as i64 {
                break beyond;
            }
            first.resume();
        }
        assert!(
            Instant::now() < deadline,
            "never caught the worker with stored-but-uncommitted verdicts and work left; worker log:\n{}",
            first.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    first.kill();

    let mut second = env.start_worker(&[]);
    let rows = env
        .wait_count("SELECT count(*) FROM verdicts", n as i64, LONG)
        .await;
    assert_eq!(rows, n as i64, "worker log:\n{}", second.stderr());
    // Every stored verdict redelivered to the second worker was recognised.
    let duplicates = second
        .wait_metric("dfa_duplicate_requests_total", redelivered as f64, LONG)
        .await;
    assert!(
        duplicates >= redelivered as f64,
        "{redelivered} stored verdicts were redelivered, {duplicates} recognised as duplicates"
    );
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
    let before = env
        .wait_count("SELECT count(*) FROM verdicts", 5, LONG)
        .await;
    assert!(before >= 5, "worker log:\n{}", worker.stderr());

    // The outage: refuse new connections to the worker's database and cut the open ones.
    let admin = sqlx::PgPool::connect(&format!("{}/postgres", common::services::pg_base()))
        .await
        .unwrap();
    let allow = |yes: bool| format!("ALTER DATABASE {} ALLOW_CONNECTIONS {yes}", env.name);
    sqlx::query(&allow(false)).execute(&admin).await.unwrap();
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
    // The worker meets the outage: its writes fail, are retried, and it
    // reports itself unhealthy while they do.
    // Whichever database write a message is at when the outage starts
    // (recording its delivery, or persisting its verdict) is the one retried:
    // the whole family counts, and only the database is down.
    let retries = worker
        .wait_metric("dfa_transient_retries_total", 1.0, LONG)
        .await;
    assert!(
        retries >= 1.0,
        "no write retried; worker log:\n{}",
        worker.stderr()
    );
    assert_eq!(
        worker.healthz().await,
        503,
        "unhealthy while the database is down"
    );
    sqlx::query(&allow(true)).execute(&admin).await.unwrap();

    let pool = sqlx::PgPool::connect(&env.db_url).await.unwrap();
    let deadline = Instant::now() + LONG;
    let mut rows = 0;
    while Instant::now() < deadline {
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
    assert_eq!(
        worker.wait_healthz(200, LONG).await,
        200,
        "healthy again once writes succeed"
    );
    let results = env
        .read_topic(&env.results, n as usize, Duration::from_secs(60))
        .await;
    assert_eq!(results.len(), n as usize);
    assert_eq!(
        worker.metric("dfa_dead_lettered_total").await,
        0.0,
        "nothing dead-lettered"
    );
    let (ok, log) = worker.terminate(Duration::from_secs(60));
    assert!(ok, "{log}");
    assert!(
        log.contains("database unavailable; retrying"),
        "the outage was logged: {log}"
    );
}

/// An HTTP server that accepts connections and never answers: a request
/// whose image is fetched from it stays in flight until the fetch timeout.
/// Returns its URL and the number of connections accepted so far.
async fn stalling_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    (format!("http://{addr}/face.jpg"), accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_work_in_flight_exits_cleanly_storing_only_finished_offsets() {
    use std::sync::atomic::Ordering;
    let env = Env::new("term").await;
    // Requests whose image never arrives: surely unfinished at the signal.
    let (url, accepted) = stalling_server().await;
    let stalled = 3;
    let mut stalled_at = Vec::new();
    for _ in 0..stalled {
        let id = Uuid::new_v4();
        let payload =
            serde_json::json!({"schema_version": 1, "request_id": id, "image": {"url": url}});
        stalled_at.push(
            env.produce(&id.to_string(), payload.to_string().as_bytes(), &[])
                .await,
        );
    }
    let n = 120;
    for i in 0..n {
        let id = Uuid::new_v4();
        env.produce(&id.to_string(), &request(id, i), &[]).await;
    }
    // The stalling server is on loopback: allow-listed (an indexed list
    // entry from the environment), plain http allowed.
    let allow_server = [
        ("DFA__WORKER__FETCH_ALLOW_HOSTS[0]", "127.0.0.1"),
        ("DFA__WORKER__FETCH_ALLOW_HTTP", "true"),
    ];
    let mut worker = env.start_worker(&[
        ("DFA__WORKER__SHUTDOWN_GRACE", "300ms"),
        ("DFA__WORKER__FETCH_TIMEOUT", "10m"),
        allow_server[0],
        allow_server[1],
    ]);
    let deadline = Instant::now() + LONG;
    while accepted.load(Ordering::SeqCst) < stalled && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        stalled,
        "the stalled requests were taken; worker log:\n{}",
        worker.stderr()
    );
    let finished = env
        .wait_count("SELECT count(*) FROM verdicts", 5, LONG)
        .await;
    assert!(finished >= 5, "worker log:\n{}", worker.stderr());
    let (ok, log) = worker.terminate(Duration::from_secs(60));
    assert!(ok, "exit status after SIGTERM: {log}");
    let field = |needle: &str, key: &str| {
        worker
            .log_line(needle)
            .and_then(|l| log_field(&l, key))
            .unwrap_or_else(|| panic!("no `{needle}` line with {key}= in: {log}"))
    };
    let in_flight = field("stopping: draining in-flight requests", "in_flight");
    assert!(
        in_flight >= stalled as i64,
        "in flight at the signal: {in_flight}"
    );
    let left = field("grace period over", "left");
    assert!(left >= stalled as i64, "left unfinished: {left}");
    // Below each partition's committed offset, every message has its verdict;
    // the stalled ones, unfinished, are at or above it.
    let committed = env.committed();
    for (partition, committed) in &committed {
        let done = env
            .count(&format!(
                "SELECT count(*) FROM verdicts WHERE source_partition = {partition} AND source_offset < {committed}"
            ))
            .await;
        assert_eq!(done, *committed, "partition {partition}: offset {committed} committed with only {done} verdicts below it");
    }
    for (partition, offset) in &stalled_at {
        let c = committed.get(partition).copied().unwrap_or(0);
        assert!(
            c <= *offset,
            "partition {partition}: unfinished offset {offset} committed ({c})"
        );
    }
    // A restarted worker finishes the rest; the stalled fetches now time out.
    let mut again = env.start_worker(&[
        allow_server[0],
        allow_server[1],
        ("DFA__WORKER__FETCH_MAX_ATTEMPTS", "2"),
    ]);
    let rows = env
        .wait_count("SELECT count(*) FROM verdicts", n as i64, LONG)
        .await;
    assert_eq!(rows, n as i64, "{}", again.stderr());
    let dead = env.read_topic(&env.dlq, stalled, LONG).await;
    assert_eq!(dead.len(), stalled, "{}", again.stderr());
    assert!(dead
        .iter()
        .all(|m| m.headers["dfa-error-kind"] == "fetch_failed"));
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

// In-process: the worker's decisions (duplicate, dead letter, abandon) with
// a fake backend, against this test's database and topics.

use crate::inproc::{message, processor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_a_redelivered_request_is_republished_without_a_second_analysis() {
    let env = Env::new("inproc_dup").await;
    let p = processor(&env, FakeBackend::scoring(0.9), &env.dir.join("images")).await;
    let id = Uuid::new_v4();
    assert_eq!(
        p.handle(&message(&env.requests, 0, request(id, 1))).await,
        Outcome::Done
    );
    assert_eq!(
        p.handle(&message(&env.requests, 1, request(id, 1))).await,
        Outcome::Duplicate
    );
    assert_eq!(
        p.backend.calls(),
        1,
        "the redelivery was not analysed again"
    );
    assert_eq!(env.count("SELECT count(*) FROM verdicts").await, 1);
    let label: String = sqlx::query_scalar("SELECT label::text FROM verdicts")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(label, "fake", "the backend's score made the verdict");
    assert_eq!(
        metric_sum(&p.metrics.render(), "dfa_duplicate_requests_total"),
        1.0
    );
    let results = env.read_topic(&env.results, 2, LONG).await;
    assert_eq!(results.len(), 2);
    assert_eq!(
        results[0].payload, results[1].payload,
        "the stored result, republished"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_bad_input_and_a_failed_analysis_are_dead_lettered_by_kind() {
    let env = Env::new("inproc_dlq").await;
    let failing = FakeBackend::failing(EngineError::Inference("boom".into()));
    let p = processor(&env, failing, &env.dir.join("images")).await;
    assert_eq!(
        p.handle(&message(&env.requests, 0, b"{nope".to_vec()))
            .await,
        Outcome::DeadLettered
    );
    assert_eq!(
        p.backend.calls(),
        0,
        "a bad message never reaches the model"
    );
    let id = Uuid::new_v4();
    assert_eq!(
        p.handle(&message(&env.requests, 1, request(id, 2))).await,
        Outcome::DeadLettered
    );
    assert_eq!(p.backend.calls(), 1);
    let unknown = serde_json::json!({
        "request_id": Uuid::new_v4(), "reviewer": "ana", "label": "real",
        "created_at": "2026-11-27T10:00:00Z"
    });
    assert_eq!(
        p.handle(&message(&env.feedback, 0, unknown.to_string().into_bytes()))
            .await,
        Outcome::DeadLettered
    );

    let dead = env.read_topic(&env.dlq, 3, LONG).await;
    let kinds: HashSet<(String, String)> = dead
        .iter()
        .map(|m| {
            (
                m.headers["dfa-original-topic"].clone(),
                m.headers["dfa-error-kind"].clone(),
            )
        })
        .collect();
    let expected: HashSet<(String, String)> = [
        (&env.requests, "invalid_json"),
        (&env.requests, "inference"),
        (&env.feedback, "unknown_request"),
    ]
    .into_iter()
    .map(|(t, k)| (t.clone(), k.to_string()))
    .collect();
    assert_eq!(kinds, expected);
    assert_eq!(env.count("SELECT count(*) FROM verdicts").await, 0);
    assert_eq!(
        env.count(&format!(
            "SELECT count(*) FROM rejected_requests WHERE request_id = '{id}' AND error_kind = 'inference'"
        ))
        .await,
        1
    );
    assert_eq!(env.count("SELECT count(*) FROM rejected_requests").await, 3);
    assert_eq!(
        metric_sum(&p.metrics.render(), "dfa_dead_lettered_total"),
        3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_a_stopped_engine_abandons_the_request_unrecorded() {
    let env = Env::new("inproc_stop").await;
    let p = processor(
        &env,
        FakeBackend::failing(EngineError::Stopped),
        &env.dir.join("images"),
    )
    .await;
    let outcome = p
        .handle(&message(&env.requests, 0, request(Uuid::new_v4(), 3)))
        .await;
    assert_eq!(outcome, Outcome::Abandoned);
    assert!(!outcome.finished(), "its offset must not be stored");
    assert_eq!(p.backend.calls(), 1);
    assert_eq!(env.count("SELECT count(*) FROM verdicts").await, 0);
    assert_eq!(env.count("SELECT count(*) FROM rejected_requests").await, 0);
    assert_eq!(
        metric_sum(&p.metrics.render(), "dfa_dead_lettered_total"),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_shutdown_abandons_a_request_waiting_for_the_image_store() {
    let env = Env::new("inproc_images").await;
    // A file where the image store's directory should be: every write fails.
    let blocker = env.dir.join("not-a-directory");
    std::fs::write(&blocker, b"").unwrap();
    let p = Arc::new(processor(&env, FakeBackend::scoring(0.1), &blocker.join("images")).await);
    let msg = message(&env.requests, 0, request(Uuid::new_v4(), 4));
    let handling = tokio::spawn({
        let p = p.clone();
        async move { p.handle(&msg).await }
    });
    let retries = r#"dfa_transient_retries_total{stage="image_store"}"#;
    let deadline = Instant::now() + LONG;
    while metric_sum(&p.metrics.render(), retries) < 1.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        metric_sum(&p.metrics.render(), retries) >= 1.0,
        "the failed image write was retried"
    );
    assert!(
        !handling.is_finished(),
        "a storage outage holds the request; it is not dead-lettered"
    );
    p.cancel.cancel();
    let outcome = tokio::time::timeout(LONG, handling)
        .await
        .expect("shutdown ends the retrying")
        .unwrap();
    assert_eq!(outcome, Outcome::Abandoned);
    assert_eq!(env.count("SELECT count(*) FROM verdicts").await, 0);
    assert_eq!(env.count("SELECT count(*) FROM rejected_requests").await, 0);
    assert_eq!(
        metric_sum(&p.metrics.render(), "dfa_dead_lettered_total"),
        0.0
    );
}

/// A verdict row as the worker would store it; `p_fake` outside 0..=1 is one
/// the database's CHECK constraint refuses.
fn row(id: Uuid, offset: i64, p_fake: f32) -> dfa::store::NewVerdict {
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
            mmproj_sha256: "m".repeat(64),
            adapter: None,
        },
        timings: EngineTimings::default(),
    };
    let mut verdict = dfa::engine::analyze::assemble_verdict(id, analysis, 0.5);
    verdict.p_fake = Some(p_fake);
    dfa::store::NewVerdict {
        verdict,
        tenant: None,
        metadata: serde_json::json!({}),
        image_sha256: "a".repeat(64),
        image_bytes: 1,
        image_source: "inline".into(),
        request_sha256: "c".repeat(64),
        source: Source {
            topic: "t".into(),
            partition: 0,
            offset,
        },
        result: format!("{{\"request_id\":\"{id}\"}}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_a_refused_row_fails_alone_and_its_batch_is_stored() {
    use dfa::worker::retry::RetryPolicy;
    use dfa::worker::writer::{persist_batch, WriteError};
    let env = Env::new("inproc_isolate").await;
    let store = Store::connect(&env.db_url, 2).await.expect("connect");
    let ids: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    let batch: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| row(*id, i as i64, if i == 2 { 2.0 } else { 0.3 }))
        .collect();
    let retry = RetryPolicy::new(Duration::from_millis(10), Duration::from_millis(50));
    let results = persist_batch(
        &store,
        &Metrics::new(),
        batch,
        &retry,
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(results.len(), 5);
    for (i, (id, r)) in ids.iter().zip(&results).enumerate() {
        if i == 2 {
            assert!(matches!(r, Err(WriteError::Rejected(_))), "{r:?}");
        } else {
            let stored = r.as_ref().expect("a good row of the batch is stored");
            assert!(stored.contains(&id.to_string()), "{stored}");
        }
    }
    assert_eq!(env.count("SELECT count(*) FROM verdicts").await, 4);
}
