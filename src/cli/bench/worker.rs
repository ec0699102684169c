//! `dfa bench --worker`: the worker's path (broker → worker → Postgres →
//! results) measured in-process against a real broker and Postgres
//! (scripts/dev-up), on a fresh database and fresh topics (worker_path.rs),
//! next to the engine alone on the same images.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use futures::stream::{self, StreamExt};

use super::report::{self, Section};
use super::worker_path::through_worker;
use super::{pictures, BenchArgs};
use crate::engine::instant::InstantBackend;
use crate::engine::{AnalysisRequest, Backend, Engine, EngineConfig, Explain, Tasks};
use crate::intake::decode_image;
use crate::settings::Settings;

const SECTION: Section = Section {
    key: "worker",
    title: "Worker (`dfa bench --worker`)",
    command: "scripts/bench --worker",
};

struct WorkerFigures {
    e2e_per_s: f64,
    engine_per_s: f64,
    instant_per_s: f64,
    instant_requests: usize,
    images: usize,
}

pub(super) async fn run(
    settings: &Settings,
    config: EngineConfig,
    args: &BenchArgs,
) -> anyhow::Result<ExitCode> {
    let pngs = pictures::pngs(args.images)?;
    let engine = Engine::start(config).await.context("starting the engine")?;
    eprintln!(
        "bench: worker path, {} images on the bench model, then {} instant requests",
        pngs.len(),
        args.instant_requests
    );
    let f = figures(settings, engine, &pngs, args.instant_requests).await?;
    let rss = report::peak_rss_mib();
    let body = render(settings, &f, rss);
    println!("{body}");
    report::update(&args.report, &SECTION, &body)?;
    Ok(ExitCode::SUCCESS)
}

fn render(settings: &Settings, f: &WorkerFigures, rss: f64) -> String {
    format!(
        "Broker: nisshi (in-memory) on loopback; Postgres 15 on loopback; one worker in-process; {} engine requests in flight; CPU. The model-backed worker rate is timed from the worker's start (consumer-group join included, so the plumbing figure is an upper bound); the instant-engine rate from the first stored verdict to the last.\n\n\
         | measurement | requests/s | |\n|---|---:|---|\n\
         | engine alone, bench-size model, {n} images | {:.2} | |\n\
         | broker → worker → Postgres → results, same images | {:.2} | plumbing costs {:+.1} % |\n\
         | instant engine (benchmark-only), {} requests of a 48x48 PNG | {:.0} | the Kafka + Postgres path per worker |\n\n\
         Peak RSS of the process (engine with the bench model, worker, benchmark producer): {rss:.0} MiB.\n",
        settings.engine.max_in_flight,
        f.engine_per_s,
        f.e2e_per_s,
        (f.engine_per_s / f.e2e_per_s - 1.0) * 100.0,
        f.instant_requests,
        f.instant_per_s,
        n = f.images,
    )
}

/// Runs the three measurements; `engine` serves the model-backed ones.
async fn figures(
    settings: &Settings,
    engine: Engine,
    pngs: &[Vec<u8>],
    instant_requests: usize,
) -> anyhow::Result<WorkerFigures> {
    // Engine alone, same images, same concurrency as the worker will have.
    let conc = settings.engine.max_in_flight as usize;
    let engine_per_s = engine_alone(settings, &engine, pngs, conc).await?;

    let mut s = settings.clone();
    // Screening without explanations, as measured for the engine alone.
    s.analysis.explain_threshold = 1.0;
    s.worker.max_in_flight = conc;
    // Timed from the worker's start (group join included): an upper bound on
    // what the plumbing costs.
    let e2e_per_s = through_worker(&s, Arc::new(engine), pngs, false).await?;

    let mut s = settings.clone();
    s.worker.max_in_flight = 512;
    let instant_pngs = vec![small_png()?; instant_requests];
    let instant_per_s = through_worker(&s, Arc::new(InstantBackend), &instant_pngs, true).await?;
    Ok(WorkerFigures {
        e2e_per_s,
        engine_per_s,
        instant_per_s,
        instant_requests,
        images: pngs.len(),
    })
}

/// Screening requests straight into the engine, `conc` in flight; images/s.
async fn engine_alone(
    settings: &Settings,
    engine: &Engine,
    pngs: &[Vec<u8>],
    conc: usize,
) -> anyhow::Result<f64> {
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
    Ok(pngs.len() as f64 / started.elapsed().as_secs_f64())
}

/// The instant engine's request: a 48x48 PNG, so the path, not the
/// picture, is what is measured.
fn small_png() -> anyhow::Result<Vec<u8>> {
    let img = image::RgbImage::from_fn(48, 48, |x, y| image::Rgb([x as u8 * 5, y as u8 * 5, 90]));
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)?;
    Ok(png.into_inner())
}
