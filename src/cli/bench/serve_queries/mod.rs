//! `dfa bench --serve`, its database half: latency of a filtered
//! `/api/verdicts` page and of `/api/stats` (30 days) over a million
//! generated verdicts, through the real router on a loopback port, on a
//! database of its own (dropped afterwards): `data` makes both.

mod data;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use data::generate;

use super::report::{self, Section};
use super::scratch::ScratchDb;
use super::serve_follow_ups::{measure, FollowUpFigures};
use super::BenchArgs;
use crate::domain::access::{NewToken, Role};
use crate::domain::verdict_query::{Keyset, VerdictFilter};
use crate::domain::Label;
use crate::engine::{Engine, EngineConfig};
use crate::serve::App;
use crate::settings::Settings;
use crate::store::Store;

pub(super) const SECTION: Section = Section {
    key: "serve-queries",
    title: "Serve: verdict queries on a million rows (`dfa bench --serve`)",
    command: "scripts/bench --serve",
};

/// The generated verdicts span this many days back from now; `/api/stats`
/// looks at the last 30 of them (its default), about half the rows.
const SPAN_DAYS: i64 = 60;
const PAGE_SAMPLES: usize = 200;
const STATS_SAMPLES: usize = 30;
const WARM_UP: usize = 3;

#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Latency {
    /// Nearest-rank percentiles of `samples`.
    fn of(mut samples: Vec<Duration>) -> Latency {
        samples.sort();
        let at = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1].as_secs_f64() * 1000.0
        };
        Latency {
            samples: samples.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
        }
    }
}

#[derive(Debug, Clone)]
pub struct QueryLatencies {
    pub rows: u64,
    /// Generating, indexing and vacuuming the rows.
    pub generate_s: f64,
    /// A page of 50 `label=fake` verdicts of the last 30 days, each at a
    /// random position (a cursor at a random instant).
    pub page: Latency,
    /// `/api/stats` with its defaults: 30 days by day.
    pub stats: Latency,
    /// The indexes Postgres picked for that page (EXPLAIN).
    pub page_indexes: Vec<String>,
}

pub(super) async fn run(
    settings: &Settings,
    config: EngineConfig,
    args: &BenchArgs,
) -> anyhow::Result<std::process::ExitCode> {
    let db = ScratchDb::create(settings).await?;
    eprintln!(
        "bench: {} verdicts in database {}, then /api/verdicts and /api/stats",
        args.verdict_rows, db.name
    );
    let pngs = super::pictures::pngs(FOLLOW_UP_VERDICTS)?;
    let measured = on_scratch(settings, config, &db, args.verdict_rows, &pngs).await;
    db.drop_database().await;
    let (queries, follow_ups) = measured?;
    let body = render(&queries);
    println!("{body}");
    report::update(&args.report, &SECTION, &body)?;
    let body = super::serve_follow_ups::render(&follow_ups);
    println!("{body}");
    report::update(&args.report, &super::serve_follow_ups::SECTION, &body)?;
    Ok(std::process::ExitCode::SUCCESS)
}

/// Verdicts a reviewer asks two follow-ups about, for the TTFT figures.
const FOLLOW_UP_VERDICTS: usize = 8;

/// `dfa serve`'s App on the scratch database (with the bench-size model's
/// engine, which follow-up timings need), measured.
async fn on_scratch(
    settings: &Settings,
    config: EngineConfig,
    db: &ScratchDb,
    rows: u64,
    pngs: &[Vec<u8>],
) -> anyhow::Result<(QueryLatencies, FollowUpFigures)> {
    let mut s = settings.clone();
    s.database.url = db.url.clone().into();
    // The follow-ups' images go to a store of their own, removed afterwards.
    let images = tempfile::tempdir()?;
    s.image_store.dir = images.path().to_string_lossy().into_owned();
    s.serve.questions_per_minute = 10_000;
    s.serve.questions_burst = 10_000;
    let store = Store::connect(&db.url, 8).await?;
    store.migrate().await?;
    let prompts = config.prompts.clone();
    let engine = Engine::start(config).await.context("starting the engine")?;
    let producer = crate::worker::kafka::producer(&s.kafka)?;
    let app = Arc::new(App::new(s, prompts, store, engine, None, producer)?);
    let (base, stop, server) = serve_locally(app.clone()).await?;
    let measured = query_latencies(&app, &base, rows).await;
    let follow_ups = match &measured {
        Ok(_) => measure(&app, &base, pngs).await,
        Err(_) => Err(anyhow::anyhow!("not measured")),
    };
    stop.cancel();
    server.await??;
    Ok((measured?, follow_ups?))
}

/// `dfa serve` (`serve::serve_on`) on a free loopback port until `stop`:
/// its base URL.
pub(super) async fn serve_locally(
    app: Arc<App>,
) -> anyhow::Result<(
    String,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let stop = CancellationToken::new();
    let server = tokio::spawn(crate::serve::serve_on(listener, app, stop.clone()));
    Ok((base, stop, server))
}

/// Generates `rows` verdicts in `app`'s database (which must be empty and
/// migrated), then times the two queries through `base` (`app` served,
/// e.g. by `serve_locally`).
pub async fn query_latencies(
    app: &Arc<App>,
    base: &str,
    rows: u64,
) -> anyhow::Result<QueryLatencies> {
    let pool = app.store.pool();
    let started = Instant::now();
    generate(pool, rows).await.context("generating verdicts")?;
    let generate_s = started.elapsed().as_secs_f64();

    let token = NewToken::generate();
    app.store
        .create_token("bench-analyst", Role::Analyst, None, &token.sha256)
        .await?;
    let client = reqwest::Client::new();
    let get = |path: String| {
        let req = client
            .get(format!("{base}{path}"))
            .bearer_auth(&token.secret);
        async move {
            let t = Instant::now();
            let r = req.send().await?;
            let status = r.status();
            let body = r.bytes().await?;
            anyhow::ensure!(
                status.is_success(),
                "{path}: {status} {}",
                String::from_utf8_lossy(&body)
            );
            Ok::<_, anyhow::Error>(t.elapsed())
        }
    };

    let now = Utc::now();
    let since = now - chrono::Duration::days(30);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut pages = Vec::with_capacity(PAGE_SAMPLES);
    for i in 0..WARM_UP + PAGE_SAMPLES {
        let at = since + chrono::Duration::seconds(rng.gen_range(0..30 * 86_400));
        let d = get(page_path(since, Some(at))).await?;
        if i >= WARM_UP {
            pages.push(d);
        }
    }
    let mut stats = Vec::with_capacity(STATS_SAMPLES);
    for i in 0..WARM_UP + STATS_SAMPLES {
        let d = get("/api/stats".into()).await?;
        if i >= WARM_UP {
            stats.push(d);
        }
    }
    let plan = app
        .store
        .explain_verdict_page(
            &VerdictFilter {
                label: Some(Label::Fake),
                since: Some(since),
                ..VerdictFilter::default()
            },
            Some(Keyset {
                created_at: since + chrono::Duration::days(15),
                request_id: Uuid::nil(),
            }),
            51,
        )
        .await?;
    Ok(QueryLatencies {
        rows,
        generate_s,
        page: Latency::of(pages),
        stats: Latency::of(stats),
        page_indexes: indexes_in(&plan),
    })
}

/// The page request: fakes since `since`, 50 of them, after `at`.
fn page_path(since: DateTime<Utc>, at: Option<DateTime<Utc>>) -> String {
    let mut path = format!(
        "/api/verdicts?label=fake&limit=50&since={}",
        since.format("%Y-%m-%dT%H:%M:%SZ")
    );
    if let Some(at) = at {
        let cursor = Keyset {
            created_at: at,
            request_id: Uuid::max(),
        };
        path.push_str(&format!("&cursor={}", cursor.encode()));
    }
    path
}

/// The index names a plan scans (`… using NAME on …`), in order, once each.
fn indexes_in(plan: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in plan.lines() {
        if let Some(rest) = line.split(" using ").nth(1) {
            let name = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// The report's section.
pub fn render(q: &QueryLatencies) -> String {
    format!(
        "{rows} generated verdicts over {SPAN_DAYS} days (30 % fake, 20 tenants, 3 adapters, 1 % corrected; generated, indexed and vacuumed in {gen:.0} s) in Postgres 15 on loopback, {threads} CPU threads shared with other work; `dfa serve`'s router on a loopback port, one client, requests one at a time (latency, not throughput), timed from send to the last body byte; {w} warm-up requests each first.\n\n\
         | request | samples | p50 ms | p99 ms |\n|---|---:|---:|---:|\n\
         | `GET /api/verdicts?label=fake&since=<30 days ago>&limit=50&cursor=<a random instant>` | {} | {:.1} | {:.1} |\n\
         | `GET /api/stats` (last 30 days by day: label/type counts, p_fake histogram, per-adapter agreement) | {} | {:.1} | {:.1} |\n\n\
         The page's plan (EXPLAIN) scans {}.\n",
        q.page.samples,
        q.page.p50_ms,
        q.page.p99_ms,
        q.stats.samples,
        q.stats.p50_ms,
        q.stats.p99_ms,
        q.page_indexes
            .iter()
            .map(|i| format!("`{i}`"))
            .collect::<Vec<_>>()
            .join(", "),
        rows = q.rows,
        gen = q.generate_s,
        w = WARM_UP,
        threads = super::threads(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let ms = |v: u64| Duration::from_millis(v);
        let l = Latency::of((1..=100).rev().map(ms).collect());
        assert_eq!((l.samples, l.p50_ms, l.p99_ms), (100, 50.0, 99.0));
        let one = Latency::of(vec![ms(7)]);
        assert_eq!((one.p50_ms, one.p99_ms), (7.0, 7.0));
    }

    #[test]
    fn the_plan_names_its_indexes_once() {
        let plan = "Nested Loop Left Join\n  ->  Index Scan Backward using verdicts_label_created_at_request_id on verdicts v\n  ->  Index Scan using corrections_request_id_latest on corrections c\n  ->  Index Scan using corrections_request_id_latest on corrections d";
        assert_eq!(
            indexes_in(plan),
            [
                "verdicts_label_created_at_request_id",
                "corrections_request_id_latest"
            ]
        );
    }

    #[test]
    fn a_page_request_carries_its_filters_and_cursor() {
        let since: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
        let p = page_path(since, Some(since + chrono::Duration::days(1)));
        assert!(
            p.starts_with("/api/verdicts?label=fake&limit=50&since=2026-03-01T00:00:00Z&cursor=")
        );
        let parsed = Keyset::decode(p.rsplit('=').next().unwrap()).unwrap();
        assert_eq!(parsed.created_at, since + chrono::Duration::days(1));
    }
}
