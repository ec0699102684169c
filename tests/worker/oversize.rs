//! Sends that can never succeed do not hold a partition still: a dead letter
//! or a result bigger than the producer's `message.max.bytes` (1 000 000 by
//! default) is sent by reference or dead-lettered, and the messages behind
//! it are processed and committed. The real `dfa worker` against the real
//! broker; every message of a test shares one key, so one partition, and
//! the good ones sit behind the big one.

use crate::common;

use std::time::Duration;

use common::services::{brokers, request, Env, Received};
use dfa::domain::digest::sha256_hex;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use uuid::Uuid;

const LONG: Duration = Duration::from_secs(240);
/// Once the verdicts are in, their offsets are committed within seconds
/// (auto-commit every second); a held partition never gets there.
const COMMIT: Duration = Duration::from_secs(30);
/// The key every message of a test shares: one partition, in order.
const KEY: &str = "one-partition";

/// A producer that takes messages up to 3 MB (the test producer's own
/// limit, so the worker is the one meeting the default 1 000 000).
fn big_producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("acks", "all")
        .set("message.max.bytes", "3000000")
        .create()
        .expect("producer")
}

/// Produces `payload` to the requests topic under `KEY`; returns (partition, offset).
async fn produce(producer: &FutureProducer, env: &Env, payload: &[u8]) -> (i32, i64) {
    let delivered = producer
        .send(
            FutureRecord::to(&env.requests).key(KEY).payload(payload),
            Duration::from_secs(30),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("the broker took no {} bytes: {e}", payload.len()));
    (delivered.partition, delivered.offset)
}

/// Produces `n` good requests after the big one; returns the partition's
/// end (the offset after the last one) and their request ids.
async fn produce_good(producer: &FutureProducer, env: &Env, n: u32) -> (i32, i64, Vec<Uuid>) {
    let mut ids = Vec::new();
    let mut last = (0, 0);
    for i in 0..n {
        let id = Uuid::new_v4();
        ids.push(id);
        last = produce(producer, env, &request(id, i % 5)).await;
    }
    (last.0, last.1 + 1, ids)
}

/// Waits until the group's committed offset on `partition` reaches `end`.
async fn wait_committed(env: &Env, partition: i32, end: i64) -> i64 {
    let committed = || async {
        let all = tokio::task::block_in_place(|| env.committed());
        all.get(&partition).copied().unwrap_or(0)
    };
    let every = Duration::from_millis(250);
    common::poll_until(COMMIT, every, committed, |c| *c >= end).await
}

/// The dead letter references its original, kept with the original bytes.
fn assert_referenced(letter: &Received, original: &[u8]) {
    let h = &letter.headers;
    assert!(letter.payload.is_empty(), "the payload is left out");
    assert_eq!(h["dfa-original-bytes"], original.len().to_string());
    let sha = sha256_hex(original);
    assert_eq!(h["dfa-original-sha256"], sha);
    let path = std::path::Path::new(&h["dfa-payload-ref"]);
    assert!(path.ends_with(format!("dead-letters/{sha}")), "{path:?}");
    let kept = std::fs::read(path).expect("the original is kept where the letter says");
    assert_eq!(sha256_hex(&kept), sha, "the kept original is the original");
}

/// About 1 MB that is not JSON, unique per test run.
fn big_invalid_message() -> Vec<u8> {
    let mut big = format!("not json {} ", Uuid::new_v4()).into_bytes();
    big.resize(1_000_000, b'x');
    big
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_megabyte_invalid_message_is_dead_lettered_by_reference_and_the_partition_moves() {
    let env = Env::new("oversize_dlq").await;
    let producer = big_producer();
    let big = big_invalid_message();
    let (partition, big_offset) = produce(&producer, &env, &big).await;
    let (p, end, _) = produce_good(&producer, &env, 20).await;
    assert_eq!(p, partition, "one key, one partition");
    let worker = env.start_worker(&[]);

    let rows = env
        .wait_count("SELECT count(*) FROM verdicts", 20, LONG)
        .await;
    assert_eq!(rows, 20, "worker log:\n{}", worker.stderr());
    let committed = wait_committed(&env, partition, end).await;
    assert_eq!(
        committed,
        end,
        "the big message must not hold its partition; worker log:\n{}",
        worker.stderr()
    );

    let dead = env.read_topic(&env.dlq, 1, LONG).await;
    assert_eq!(dead.len(), 1, "worker log:\n{}", worker.stderr());
    let h = &dead[0].headers;
    assert_eq!(h["dfa-error-kind"], "invalid_json");
    assert_eq!(h["dfa-original-topic"], env.requests);
    assert_eq!(h["dfa-original-partition"], partition.to_string());
    assert_eq!(h["dfa-original-offset"], big_offset.to_string());
    assert_referenced(&dead[0], &big);
    assert_eq!(
        env.count("SELECT count(*) FROM rejected_requests WHERE error_kind = 'invalid_json'")
            .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_within_the_payload_limit_but_too_large_to_send_goes_by_reference() {
    // The limit allows the payload inline, but payload plus headers exceed
    // the producer's message.max.bytes: the refused letter is sent again,
    // referencing the kept original.
    let env = Env::new("oversize_fallback").await;
    let producer = big_producer();
    let big = big_invalid_message();
    let (partition, _) = produce(&producer, &env, &big).await;
    let (_, end, _) = produce_good(&producer, &env, 1).await;
    let worker = env.start_worker(&[("DFA__KAFKA__DLQ_MAX_PAYLOAD_BYTES", "2000000")]);

    let dead = env.read_topic(&env.dlq, 1, LONG).await;
    assert_eq!(dead.len(), 1, "worker log:\n{}", worker.stderr());
    assert_eq!(dead[0].headers["dfa-error-kind"], "invalid_json");
    assert_referenced(&dead[0], &big);
    assert_eq!(
        wait_committed(&env, partition, end).await,
        end,
        "worker log:\n{}",
        worker.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_too_large_to_publish_is_dead_lettered_and_the_partition_moves() {
    use base64::Engine as _;
    let env = Env::new("oversize_result").await;
    let producer = big_producer();
    // The result echoes the metadata: over the producer's 1 000 000 bytes.
    let id = Uuid::new_v4();
    let png = common::encode(&common::picture(1, 48, 48), image::ImageFormat::Png);
    let big = serde_json::json!({
        "schema_version": 1,
        "request_id": id,
        "image": {"base64": base64::engine::general_purpose::STANDARD.encode(png)},
        "metadata": {"blob": "m".repeat(1_000_000)},
    })
    .to_string()
    .into_bytes();
    let (partition, _) = produce(&producer, &env, &big).await;
    let (p, end, good) = produce_good(&producer, &env, 5).await;
    assert_eq!(p, partition, "one key, one partition");
    let worker = env.start_worker(&[]);

    let dead = env.read_topic(&env.dlq, 1, LONG).await;
    assert_eq!(dead.len(), 1, "worker log:\n{}", worker.stderr());
    let h = &dead[0].headers;
    assert_eq!(h["dfa-error-kind"], "result_too_large");
    assert!(
        h["dfa-error-reason"].contains("too large"),
        "{}",
        h["dfa-error-reason"]
    );
    // The request itself is over kafka.dlq_max_payload_bytes (900 000).
    assert_referenced(&dead[0], &big);
    assert_eq!(
        wait_committed(&env, partition, end).await,
        end,
        "worker log:\n{}",
        worker.stderr()
    );
    let results = env.read_topic(&env.results, good.len(), LONG).await;
    let published: Vec<String> = results.iter().filter_map(|m| m.key.clone()).collect();
    assert_eq!(published.len(), good.len());
    assert!(good.iter().all(|g| published.contains(&g.to_string())));
    assert!(!published.contains(&id.to_string()));
    let recorded = env
        .count(&format!(
            "SELECT count(*) FROM rejected_requests WHERE error_kind = 'result_too_large' AND request_id = '{id}'"
        ))
        .await;
    assert_eq!(recorded, 1);
}

/// The `checks.broker` entry of the worker's /healthz.
async fn broker_check(worker: &common::child::Worker) -> String {
    let (_, body) = worker.healthz_body().await;
    let report: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    report["checks"]["broker"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_held_by_an_outage_is_reported_by_healthz_until_it_goes_through() {
    // The results topic does not exist yet: every send of the result fails
    // (transiently: it may be created) and is retried; the partition is
    // held, and /healthz must say so. Short producer timeouts (through
    // kafka.options, from a config file) make each failed attempt quick.
    let env = Env::new("oversize_held").await;
    let late = format!("{}.late-results", env.name);
    let config = env.dir.join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    std::fs::write(
        config.join("held.toml"),
        "[kafka.options]\n\"message.timeout.ms\" = \"1500\"\n\"topic.metadata.propagation.max.ms\" = \"500\"\n",
    )
    .expect("config file");
    let id = Uuid::new_v4();
    let (partition, offset) = env.produce(KEY, &request(id, 1), &[]).await;
    let log = env.dir.join("held-worker.log");
    let mut cmd = env.dfa(&["--config-dir", &config.display().to_string(), "worker"]);
    cmd.env("DFA_ENV", "held")
        .env("DFA__KAFKA__RESULTS_TOPIC", &late)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("worker log"));
    let worker = common::child::Worker::new(cmd.spawn().expect("spawn dfa worker"), log);

    let every = Duration::from_millis(200);
    let held = common::poll_until(
        Duration::from_secs(60),
        every,
        || broker_check(&worker),
        |c| c.contains(&late),
    )
    .await;
    assert!(
        held.starts_with(&format!("{late}: ")),
        "/healthz names the held topic and its error: {held:?}; worker log:\n{}",
        worker.stderr()
    );
    assert_eq!(worker.healthz().await, 503);
    let committed = tokio::task::block_in_place(|| env.committed());
    assert_eq!(
        committed.get(&partition).copied().unwrap_or(0),
        offset,
        "held"
    );

    env.create_topic(&late).await;
    let published = env.read_topic(&late, 1, LONG).await;
    assert_eq!(published.len(), 1, "worker log:\n{}", worker.stderr());
    let passed = common::poll_until(LONG, every, || broker_check(&worker), |c| c == "ok").await;
    assert_eq!(passed, "ok", "the check passes once the send goes through");
    assert_eq!(
        wait_committed(&env, partition, offset + 1).await,
        offset + 1
    );
}
