//! `dfa bench --worker`: the worker's path (broker → worker → Postgres →
//! results) measured in-process against a real broker and Postgres
//! (scripts/dev-up), on a fresh database and fresh topics.

use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use base64::Engine as _;
use futures::stream::{self, StreamExt};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::engine::instant::InstantBackend;
use crate::engine::{AnalysisRequest, Backend, Engine, Explain, Tasks};
use crate::intake::decode_image;
use crate::settings::Settings;

pub struct WorkerFigures {
    pub e2e_per_s: f64,
    pub engine_per_s: f64,
    pub instant_per_s: f64,
    pub instant_requests: usize,
    pub images: usize,
}

/// Runs both measurements; `engine` serves the model-backed one.
pub async fn run(
    settings: &Settings,
    engine: Engine,
    pngs: &[Vec<u8>],
    instant_requests: usize,
) -> anyhow::Result<WorkerFigures> {
    // Engine alone, same images, same concurrency as the worker will have.
    let conc = settings.engine.max_in_flight as usize;
    let tasks = Tasks {
        explain: Explain::Never,
        ..Tasks::screening(1.0)
    };
    let images: Vec<_> = pngs
        .iter()
        .map(|b| decode_image(b, &settings.image))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let results: Vec<_> = stream::iter(images)
        .map(|image| {
            engine.analyze(AnalysisRequest {
                image,
                tasks: tasks.clone(),
            })
        })
        .buffer_unordered(conc)
        .collect()
        .await;
    for r in results {
        r?;
    }
    let engine_per_s = pngs.len() as f64 / started.elapsed().as_secs_f64();

    let mut s = settings.clone();
    // Screening without explanations, as measured for the engine alone.
    s.analysis.explain_threshold = 1.0;
    s.worker.max_in_flight = conc;
    // Timed from the worker's start (group join included): an upper bound on
    // what the plumbing costs.
    let e2e_per_s = through_worker(&s, Arc::new(engine), pngs, false).await?;

    let small = {
        let img =
            image::RgbImage::from_fn(48, 48, |x, y| image::Rgb([x as u8 * 5, y as u8 * 5, 90]));
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png)?;
        png.into_inner()
    };
    let mut s = settings.clone();
    s.worker.max_in_flight = 512;
    let instant_pngs = vec![small; instant_requests];
    let instant_per_s = through_worker(&s, Arc::new(InstantBackend), &instant_pngs, true).await?;
    Ok(WorkerFigures {
        e2e_per_s,
        engine_per_s,
        instant_per_s,
        instant_requests,
        images: pngs.len(),
    })
}

/// Produces one request per image, runs the worker until every verdict row
/// exists; returns requests/s from the worker's start, or with `steady` from
/// the first stored verdict (start-up excluded).
async fn through_worker<B: Backend + 'static>(
    settings: &Settings,
    backend: Arc<B>,
    pngs: &[Vec<u8>],
    steady: bool,
) -> anyhow::Result<f64> {
    let name = format!("dfa_bench_{}", &Uuid::new_v4().simple().to_string()[..10]);
    let base = settings
        .database
        .url
        .expose_secret()
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .context("database.url has no database name")?;
    let admin_db = sqlx::PgPool::connect(&format!("{base}/postgres"))
        .await
        .context("Postgres (scripts/dev-up)")?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin_db)
        .await?;
    let mut s = settings.clone();
    s.database.url = format!("{base}/{name}").into();
    s.database.migrate_on_start = true;
    s.kafka.requests_topic = format!("{name}.requests");
    s.kafka.results_topic = format!("{name}.results");
    s.kafka.dlq_topic = format!("{name}.dlq");
    s.kafka.group_id = format!("{name}.workers");
    s.worker.metrics_addr = "127.0.0.1:0".into();

    let admin: AdminClient<DefaultClientContext> =
        crate::worker::kafka::client_config(&s.kafka).create()?;
    let topics: Vec<NewTopic> = [
        &s.kafka.requests_topic,
        &s.kafka.results_topic,
        &s.kafka.dlq_topic,
    ]
    .iter()
    .map(|t| NewTopic::new(t, 4, TopicReplication::Fixed(1)))
    .collect();
    for r in admin.create_topics(&topics, &AdminOptions::new()).await? {
        r.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
    }
    let producer: FutureProducer = crate::worker::kafka::client_config(&s.kafka)
        .set("linger.ms", "20")
        .create()?;
    let sends = pngs.iter().map(|png| {
        let id = Uuid::new_v4();
        let body = serde_json::json!({
            "schema_version": 1,
            "request_id": id,
            "image": {"base64": base64::engine::general_purpose::STANDARD.encode(png)},
        })
        .to_string();
        let producer = producer.clone();
        let topic = s.kafka.requests_topic.clone();
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

    let stop = CancellationToken::new();
    let pool = sqlx::PgPool::connect(s.database.url.expose_secret()).await?;
    let started = Instant::now();
    let worker = tokio::spawn(crate::worker::run(s, backend, stop.clone()));
    let want = pngs.len() as i64;
    // For the steady rate: from the first stored verdict, since group join
    // and migrations are start-up costs, not throughput.
    let mut first: Option<(Instant, i64)> = None;
    loop {
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM verdicts")
            .fetch_one(&pool)
            .await
            .unwrap_or(0);
        if rows > 0 && first.is_none() {
            first = Some((Instant::now(), rows));
        }
        if rows >= want {
            break;
        }
        if worker.is_finished() {
            anyhow::bail!("the worker stopped early");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (t0, n0) = match first {
        Some(f) if steady => f,
        _ => (started, 0),
    };
    let elapsed = t0
        .elapsed()
        .as_secs_f64()
        .max(started.elapsed().as_secs_f64() / want as f64);
    let rate = (want - n0) as f64 / elapsed;
    stop.cancel();
    worker.await??;
    pool.close().await;
    let _ = sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&admin_db)
        .await;
    Ok(rate)
}
