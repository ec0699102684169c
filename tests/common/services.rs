//! Real services for the worker tests: a fresh Postgres database and fresh
//! Kafka topics per test, and the real `dfa worker` binary as a child process.
#![allow(dead_code)]

use std::collections::HashMap;
use std::process::{Command, Stdio};

pub use super::child::Worker;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;
use uuid::Uuid;

pub fn brokers() -> String {
    std::env::var("DFA_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub fn pg_base() -> String {
    std::env::var("DFA_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432".into())
}

pub const PARTITIONS: i32 = 4;

/// One test's world: its database, its topics, its consumer group.
pub struct Env {
    pub name: String,
    pub db_url: String,
    pub pool: PgPool,
    pub requests: String,
    pub results: String,
    pub dlq: String,
    pub feedback: String,
    pub group: String,
    pub producer: FutureProducer,
    /// This test's image store and adapter store live under here.
    pub dir: std::path::PathBuf,
}

impl Env {
    pub async fn new(test: &str) -> Env {
        let id = Uuid::new_v4().simple().to_string()[..10].to_string();
        let name = format!("dfa_{test}_{id}");
        let admin_pool = PgPool::connect(&format!("{}/postgres", pg_base()))
            .await
            .expect("postgres is running (scripts/dev-up)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin_pool)
            .await
            .expect("create database");
        let db_url = format!("{}/{name}", pg_base());
        let pool = PgPool::connect(&db_url).await.expect("connect test db");
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .expect("migrations");

        let (requests, results, dlq, feedback) = (
            format!("{name}.requests"),
            format!("{name}.results"),
            format!("{name}.dlq"),
            format!("{name}.feedback"),
        );
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .create()
            .expect("admin client");
        let topics: Vec<NewTopic> = [&requests, &results, &dlq, &feedback]
            .iter()
            .map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(1)))
            .collect();
        let created = admin
            .create_topics(&topics, &AdminOptions::new())
            .await
            .expect("create topics (is the broker up?)");
        for r in created {
            r.expect("topic created");
        }
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .set("acks", "all")
            .create()
            .expect("producer");
        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(&name);
        std::fs::create_dir_all(&dir).expect("test dir");
        Env {
            group: format!("{name}.workers"),
            dir,
            feedback,
            name,
            db_url,
            pool,
            requests,
            results,
            dlq,
            producer,
        }
    }

    /// A `dfa` command set up for this test's database, topics and stores.
    pub fn dfa(&self, args: &[&str]) -> Command {
        super::tiny();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dfa"));
        cmd.args(args)
            .env_remove("DFA_ENV")
            .env("DFA__MODEL__TINY_DIR", super::tiny_dir())
            .env("DFA__ENGINE__THREADS", "1")
            // Not about faces unless a test says so (common::settings).
            .env("DFA__FACES__MODE", "off")
            .env("DFA__ENGINE__THREADS_BATCH", "1")
            .env("DFA__ANALYSIS__MAX_EXPLAIN_TOKENS", "8")
            .env("DFA__ANALYSIS__MAX_ANSWER_TOKENS", "8")
            .env("DFA__KAFKA__BROKERS", brokers())
            .env("DFA__KAFKA__GROUP_ID", &self.group)
            .env("DFA__KAFKA__REQUESTS_TOPIC", &self.requests)
            .env("DFA__KAFKA__RESULTS_TOPIC", &self.results)
            .env("DFA__KAFKA__DLQ_TOPIC", &self.dlq)
            .env("DFA__KAFKA__FEEDBACK_TOPIC", &self.feedback)
            .env("DFA__IMAGE_STORE__DIR", self.dir.join("images"))
            .env("DFA__ADAPTERS__DIR", self.dir.join("adapters"))
            .env("DFA__ADAPTERS__POLL_INTERVAL", "300ms")
            .env("DFA__KAFKA__SESSION_TIMEOUT", "6s")
            .env("DFA__DATABASE__URL", &self.db_url)
            .env("DFA__DATABASE__MIGRATE_ON_START", "true")
            .env("DFA__WORKER__METRICS_ADDR", "127.0.0.1:0")
            .env("DFA__WORKER__FETCH_TIMEOUT", "2s")
            .env("DFA__WORKER__RETRY_MAX", "1s")
            .env("DFA_LOG", "info");
        cmd
    }

    /// Runs a `dfa` command to completion.
    pub fn run_dfa(&self, args: &[&str], extra_env: &[(&str, &str)]) -> std::process::Output {
        let mut cmd = self.dfa(args);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.output().expect("run dfa")
    }

    /// Starts `dfa worker` against this test's database and topics.
    pub fn start_worker(&self, extra_env: &[(&str, &str)]) -> Worker {
        let mut cmd = self.dfa(&["worker"]);
        cmd.stdout(Stdio::null());
        let log = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "{}-{}.log",
            self.name,
            Uuid::new_v4()
        ));
        cmd.stderr(Stdio::from(
            std::fs::File::create(&log).expect("worker log"),
        ));
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        Worker::new(cmd.spawn().expect("spawn dfa worker"), log)
    }

    pub async fn produce_feedback(&self, key: &str, payload: &[u8]) {
        self.producer
            .send(
                FutureRecord::to(&self.feedback).key(key).payload(payload),
                Duration::from_secs(10),
            )
            .await
            .expect("produce feedback");
    }

    /// Produces a request; returns where it landed (partition, offset).
    pub async fn produce(&self, key: &str, payload: &[u8], headers: &[(&str, &str)]) -> (i32, i64) {
        let mut h = rdkafka::message::OwnedHeaders::new();
        for (k, v) in headers {
            h = h.insert(rdkafka::message::Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let delivered = self
            .producer
            .send(
                FutureRecord::to(&self.requests)
                    .key(key)
                    .payload(payload)
                    .headers(h),
                Duration::from_secs(10),
            )
            .await
            .expect("produce");
        (delivered.partition, delivered.offset)
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&self.pool)
            .await
            .expect(sql)
    }

    /// Waits until `sql` (a count) reaches `n`.
    pub async fn wait_count(&self, sql: &str, n: i64, timeout: Duration) -> i64 {
        let every = Duration::from_millis(200);
        super::poll_until(timeout, every, || self.count(sql), |c| *c >= n).await
    }

    /// Reads every message of `topic` (from the beginning) until `n` arrive or the timeout.
    pub async fn read_topic(&self, topic: &str, n: usize, timeout: Duration) -> Vec<Received> {
        self.read_topic_until(topic, |m| m.len() >= n, timeout)
            .await
    }

    /// Reads `topic` from the beginning until `done` says so or the timeout.
    pub async fn read_topic_until(
        &self,
        topic: &str,
        done: impl Fn(&[Received]) -> bool,
        timeout: Duration,
    ) -> Vec<Received> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .set(
                "group.id",
                format!("{}.reader.{}", self.name, Uuid::new_v4()),
            )
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .expect("reader");
        consumer.subscribe(&[topic]).expect("subscribe");
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while !done(&out) && Instant::now() < deadline {
            if let Ok(Ok(m)) =
                tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await
            {
                let mut headers = HashMap::new();
                if let Some(h) = m.headers() {
                    for x in h.iter() {
                        headers.insert(
                            x.key.to_string(),
                            String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
                        );
                    }
                }
                out.push(Received {
                    key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    headers,
                });
            }
        }
        out
    }

    /// Stored verdicts whose request's offset the group has not committed:
    /// a worker that takes over redelivers exactly these.
    pub async fn verdicts_beyond_committed(&self) -> i64 {
        let mut beyond = 0;
        for (partition, committed) in self.committed() {
            beyond += self
                .count(&format!(
                    "SELECT count(*) FROM verdicts WHERE source_partition = {partition} AND source_offset >= {committed}"
                ))
                .await;
        }
        beyond
    }

    /// The group's committed offsets on the requests topic, summed over partitions.
    pub fn committed_total(&self) -> i64 {
        self.committed().values().sum()
    }

    /// Committed offset per partition.
    pub fn committed(&self) -> HashMap<i32, i64> {
        let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .set("group.id", &self.group)
            .create()
            .expect("offset reader");
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition(&self.requests, p);
        }
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed offsets");
        committed
            .elements()
            .iter()
            .map(|e| {
                (
                    e.partition(),
                    if let Offset::Offset(o) = e.offset() {
                        o
                    } else {
                        0
                    },
                )
            })
            .collect()
    }
}

pub struct Received {
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
}

/// A request message for an inline PNG.
pub fn request(id: Uuid, seed: u32) -> Vec<u8> {
    use base64::Engine as _;
    let png = super::encode(&super::picture(seed, 48, 48), image::ImageFormat::Png);
    serde_json::json!({
        "schema_version": 1,
        "request_id": id,
        "image": {"base64": base64::engine::general_purpose::STANDARD.encode(png)},
        "tenant": "acme",
        "metadata": {"seed": seed}
    })
    .to_string()
    .into_bytes()
}

impl Env {
    /// High watermark (next offset to be written) per partition of `topic`:
    /// how many messages it holds, with no waiting for more to arrive.
    pub fn high_watermarks(&self, topic: &str) -> HashMap<i32, i64> {
        let consumer: rdkafka::consumer::BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .create()
            .expect("watermark reader");
        (0..PARTITIONS)
            .map(|p| {
                let (_, high) = consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .expect("watermarks");
                (p, high)
            })
            .collect()
    }

    /// Messages in `topic`, over all partitions.
    pub fn topic_len(&self, topic: &str) -> i64 {
        self.high_watermarks(topic).values().sum()
    }

    /// Waits until `topic` holds at least `n` messages; returns how many.
    pub async fn wait_topic_len(&self, topic: &str, n: i64, timeout: Duration) -> i64 {
        let every = Duration::from_millis(200);
        super::poll_until(
            timeout,
            every,
            || async { self.topic_len(topic) },
            |len| *len >= n,
        )
        .await
    }

    /// The distinct keys of the first `n` results.
    pub async fn result_keys(
        &self,
        n: usize,
        timeout: Duration,
    ) -> std::collections::HashSet<String> {
        let received = self.read_topic(&self.results, n, timeout).await;
        received.into_iter().filter_map(|m| m.key).collect()
    }

    /// Creates one more topic (e.g. one a worker was started without).
    pub async fn create_topic(&self, topic: &str) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .create()
            .expect("admin client");
        let topics = [NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1))];
        for r in admin
            .create_topics(&topics, &AdminOptions::new())
            .await
            .expect("create topic")
        {
            r.expect("topic created");
        }
    }
}

impl Env {
    /// Produces feedback with headers (e.g. `dfa-signature`).
    pub async fn produce_feedback_with(&self, key: &str, payload: &[u8], headers: &[(&str, &str)]) {
        let mut h = rdkafka::message::OwnedHeaders::new();
        for (k, v) in headers {
            h = h.insert(rdkafka::message::Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        self.producer
            .send(
                FutureRecord::to(&self.feedback)
                    .key(key)
                    .payload(payload)
                    .headers(h),
                Duration::from_secs(10),
            )
            .await
            .expect("produce feedback");
    }
}
