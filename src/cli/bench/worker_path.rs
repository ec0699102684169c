//! One measurement of `dfa bench --worker`: requests through the broker,
//! the worker and Postgres, on a database and topics of its own so runs
//! never see each other's rows or messages.

use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::stream::{self, StreamExt};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::scratch::ScratchDb;
use crate::engine::Backend;
use crate::settings::{KafkaSettings, Settings};
use crate::worker::kafka::client_config;

/// Produces one request per image, runs the worker until every verdict row
/// exists; returns requests/s from the worker's start, or with `steady` from
/// the first stored verdict (start-up excluded).
pub(super) async fn through_worker<B: Backend + 'static>(
    settings: &Settings,
    backend: Arc<B>,
    pngs: &[Vec<u8>],
    steady: bool,
) -> anyhow::Result<f64> {
    let scratch = ScratchDb::create(settings).await?;
    let s = isolated(settings, &scratch);
    // Both Kafka clients (and their polling threads) stay alive through the
    // measurement, so the figures stay comparable with earlier runs.
    let admin: AdminClient<DefaultClientContext> = client_config(&s.kafka).create()?;
    create_topics(&admin, &s.kafka).await?;
    let producer: FutureProducer = client_config(&s.kafka).set("linger.ms", "20").create()?;
    produce(&producer, &s.kafka.requests_topic, pngs).await?;
    let arrivals = serve_until_stored(s, backend, pngs.len() as i64).await?;
    scratch.drop_database().await;
    Ok(arrivals.rate(steady))
}

/// `settings` pointed at the scratch database, and at topics and a
/// consumer group named after it.
fn isolated(settings: &Settings, db: &ScratchDb) -> Settings {
    let name = &db.name;
    let mut s = settings.clone();
    s.database.url = db.url.clone().into();
    s.database.migrate_on_start = true;
    s.kafka.requests_topic = format!("{name}.requests");
    s.kafka.results_topic = format!("{name}.results");
    s.kafka.dlq_topic = format!("{name}.dlq");
    s.kafka.feedback_topic = format!("{name}.feedback");
    s.kafka.group_id = format!("{name}.workers");
    s.worker.metrics_addr = "127.0.0.1:0".into();
    s
}

async fn create_topics(
    admin: &AdminClient<DefaultClientContext>,
    kafka: &KafkaSettings,
) -> anyhow::Result<()> {
    let topics: Vec<NewTopic> = [
        &kafka.requests_topic,
        &kafka.results_topic,
        &kafka.dlq_topic,
        &kafka.feedback_topic,
    ]
    .iter()
    .map(|t| NewTopic::new(t, 4, TopicReplication::Fixed(1)))
    .collect();
    for r in admin.create_topics(&topics, &AdminOptions::new()).await? {
        r.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
    }
    Ok(())
}

/// One request per image on `topic`, all acknowledged before it returns.
async fn produce(producer: &FutureProducer, topic: &str, pngs: &[Vec<u8>]) -> anyhow::Result<()> {
    let sends = pngs.iter().map(|png| {
        let id = Uuid::new_v4();
        let body = serde_json::json!({
            "schema_version": 1,
            "request_id": id,
            "image": {"base64": base64::engine::general_purpose::STANDARD.encode(png)},
        })
        .to_string();
        let producer = producer.clone();
        let topic = topic.to_string();
        async move {
            producer
                .send(
                    FutureRecord::to(&topic).key(&id.to_string()).payload(&body),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))
        }
    });
    for r in stream::iter(sends)
        .buffer_unordered(256)
        .collect::<Vec<_>>()
        .await
    {
        r?;
    }
    Ok(())
}

/// When the verdicts were stored, relative to the worker's start.
struct Arrivals {
    started: Instant,
    /// The first time any verdict row existed, and how many there were then.
    first: Option<(Instant, i64)>,
    /// When all `want` rows existed.
    finished: Instant,
    want: i64,
}

impl Arrivals {
    /// Requests/s from the worker's start, or with `steady` from the first
    /// stored verdict: group join and migrations are start-up costs, not
    /// throughput.
    fn rate(&self, steady: bool) -> f64 {
        let (t0, n0) = match self.first {
            Some(f) if steady => f,
            _ => (self.started, 0),
        };
        let elapsed = self
            .finished
            .duration_since(t0)
            .as_secs_f64()
            .max(self.finished.duration_since(self.started).as_secs_f64() / self.want as f64);
        (self.want - n0) as f64 / elapsed
    }
}

/// Runs the worker on `s` until `want` verdict rows exist, then stops it.
async fn serve_until_stored<B: Backend + 'static>(
    s: Settings,
    backend: Arc<B>,
    want: i64,
) -> anyhow::Result<Arrivals> {
    let stop = CancellationToken::new();
    let pool = PgPool::connect(s.database.url.expose_secret()).await?;
    let started = Instant::now();
    let worker = tokio::spawn(crate::worker::run(s, backend, stop.clone()));
    let first = wait_for_verdicts(&pool, &worker, want).await?;
    let arrivals = Arrivals {
        started,
        first,
        finished: Instant::now(),
        want,
    };
    stop.cancel();
    worker.await??;
    pool.close().await;
    Ok(arrivals)
}

/// Polls the verdict count until `want` rows exist; returns when the first
/// row was seen and the count then. Fails if the worker stops before.
async fn wait_for_verdicts<T>(
    pool: &PgPool,
    worker: &JoinHandle<T>,
    want: i64,
) -> anyhow::Result<Option<(Instant, i64)>> {
    let mut first = None;
    loop {
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM verdicts")
            .fetch_one(pool)
            .await
            .unwrap_or(0);
        if rows > 0 && first.is_none() {
            first = Some((Instant::now(), rows));
        }
        if rows >= want {
            return Ok(first);
        }
        if worker.is_finished() {
            anyhow::bail!("the worker stopped early");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::Arrivals;

    #[test]
    fn the_steady_rate_starts_at_the_first_stored_verdict() {
        let started = Instant::now();
        let arrivals = Arrivals {
            started,
            first: Some((started + Duration::from_secs(1), 2)),
            finished: started + Duration::from_secs(3),
            want: 12,
        };
        assert!((arrivals.rate(false) - 4.0).abs() < 1e-9);
        // 10 rows after the first two, in the 2 s since they were seen.
        assert!((arrivals.rate(true) - 5.0).abs() < 1e-9);
    }
}
