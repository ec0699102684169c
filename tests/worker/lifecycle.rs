//! The worker's life in its group: rebalances under load, shutdown, a
//! missing topic, and a dead engine. Each waits for the event it names.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::common;
use common::fake_backend::FakeBackend;
use common::services::{request, Env};
use dfa::engine::EngineError;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(240);

async fn produce_requests(env: &Env, from: u32, to: u32, ids: &mut Vec<Uuid>) {
    for i in from..to {
        let id = Uuid::new_v4();
        ids.push(id);
        env.produce(&id.to_string(), &request(id, i), &[]).await;
    }
}

/// Waits until `worker`'s log has a line containing `needle`.
async fn wait_log(worker: &common::child::Worker, needle: &str) -> String {
    common::poll_until(
        LONG,
        Duration::from_millis(100),
        || async { worker.log_line(needle) },
        |l| l.is_some(),
    )
    .await
    .unwrap_or_else(|| panic!("no `{needle}` in the log:\n{}", worker.stderr()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_in_one_group_under_load_answer_every_request_exactly_once() {
    let env = Env::new("group").await;
    let n = 400;
    let mut ids = Vec::new();
    produce_requests(&env, 0, 200, &mut ids).await;
    let mut first = env.start_worker(&[]);
    env.wait_count("SELECT count(*) FROM verdicts", 40, LONG)
        .await;

    // A second worker joins mid-run: the first's partitions are revoked
    // (drained and committed) and split between the two.
    let mut second = env.start_worker(&[]);
    let assigned = wait_log(&second, "partitions assigned").await;
    assert!(
        !assigned.contains("partitions=0"),
        "the second worker got partitions: {assigned}"
    );
    produce_requests(&env, 200, 300, &mut ids).await;
    let at_term = env.count("SELECT count(*) FROM verdicts").await;

    // The first leaves mid-run: it drains, commits and leaves the group.
    let (ok, log) = first.terminate(Duration::from_secs(60));
    assert!(ok, "the first worker exits cleanly on SIGTERM: {log}");
    assert!(
        at_term < n as i64,
        "the first worker was stopped mid-run ({at_term} of {n} stored)"
    );
    produce_requests(&env, 300, n, &mut ids).await;

    let rows = env
        .wait_count("SELECT count(*) FROM verdicts", n as i64, LONG)
        .await;
    assert_eq!(rows, n as i64, "second worker log:\n{}", second.stderr());
    let results = env.wait_topic_len(&env.results, n as i64, LONG).await;
    let (ok, log) = second.terminate(Duration::from_secs(60));
    assert!(ok, "{log}");

    assert_eq!(
        env.count("SELECT count(DISTINCT request_id) FROM verdicts")
            .await,
        n as i64
    );
    let final_results = env.topic_len(&env.results);
    assert_eq!(
        final_results, n as i64,
        "one result per request (seen {results} while running)"
    );
    let keys = env.result_keys(n as usize, LONG).await;
    let wanted: HashSet<String> = ids.iter().map(Uuid::to_string).collect();
    assert_eq!(keys, wanted, "every request has its result");
    assert_eq!(
        env.committed(),
        env.high_watermarks(&env.requests),
        "committed lag 0 on every partition"
    );
    assert_eq!(env.topic_len(&env.dlq), 0, "no dead letters");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_is_named_once_and_health_fails_until_it_exists() {
    let env = Env::new("notopic").await;
    let topic = format!("{}.late", env.name);
    let mut worker = env.start_worker(&[("DFA__KAFKA__REQUESTS_TOPIC", &topic)]);
    wait_log(&worker, "missing Kafka topics").await;
    let (status, body) = worker.healthz_body().await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(&topic), "/healthz names the topic: {body}");

    env.create_topic(&topic).await;
    assert_eq!(worker.wait_healthz(200, LONG).await, 200);
    let id = Uuid::new_v4();
    env.producer
        .send(
            rdkafka::producer::FutureRecord::to(&topic)
                .key(&id.to_string())
                .payload(&request(id, 1)),
            Duration::from_secs(10),
        )
        .await
        .expect("produce");
    let rows = env
        .wait_count("SELECT count(*) FROM verdicts", 1, LONG)
        .await;
    assert_eq!(rows, 1, "{}", worker.stderr());
    let (ok, log) = worker.terminate(Duration::from_secs(60));
    assert!(ok, "{log}");
    let named = log.matches("missing Kafka topics").count();
    assert_eq!(named, 1, "named once: {log}");
    // librdkafka's own report (once per metadata refresh) and the worker's
    // first consume error; not one per poll while the topic was missing.
    let unknown = log
        .lines()
        .filter(|l| l.contains("Unknown topic or partition"))
        .count();
    assert!(unknown <= 4, "{unknown} unknown-topic error lines: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_engine_stops_the_worker_with_an_error_and_commits_nothing_unfinished() {
    let env = Env::new("zombie").await;
    let mut ids = Vec::new();
    produce_requests(&env, 0, 3, &mut ids).await;
    let mut s = crate::inproc::settings(&env, &env.dir.join("images"));
    s.worker.metrics_addr = "127.0.0.1:0".into();
    s.worker.shutdown_grace = Duration::from_secs(2);
    // The engine thread is gone: every analysis answers `Stopped`.
    let backend = Arc::new(FakeBackend::failing(EngineError::Stopped));
    let run = dfa::worker::run(s, backend.clone(), CancellationToken::new());
    let ended = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the worker stops by itself instead of lingering");
    let error = format!("{:#}", ended.expect_err("a dead engine is an error"));
    assert!(error.contains("engine"), "{error}");
    assert!(backend.calls() >= 1, "the engine was asked");
    assert_eq!(env.committed_total(), 0, "nothing unfinished was committed");
    assert_eq!(env.topic_len(&env.dlq), 0, "nothing was dead-lettered");
    assert_eq!(env.count("SELECT count(*) FROM verdicts").await, 0);
}
