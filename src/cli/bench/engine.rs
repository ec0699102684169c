//! `dfa bench` (the default): the engine's throughput on the bench-size
//! model at several concurrencies, screening and full generation, with the
//! bare llama.cpp loop (bare.rs) as the reference for the engine's overhead.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use futures::stream::{self, StreamExt};

use super::report::{self, Section};
use super::{bare, pictures, BenchArgs};
use crate::engine::{AnalysisRequest, Backend, Engine, EngineConfig, EngineInfo, Explain, Tasks};
use crate::intake::DecodedImage;
use crate::settings::Settings;

const SECTION: Section = Section {
    key: "engine",
    title: "Engine (`dfa bench`)",
    command: "scripts/bench",
};

/// Requests in flight for the screening measurements; the first is the
/// baseline the others are compared with.
const CONCURRENCIES: [usize; 4] = [1, 4, 8, 16];
/// Requests in flight for full generation, compared with screening at the same.
const FULL_CONCURRENCY: usize = 8;

/// One measurement over all images.
pub(super) struct Throughput {
    pub images_per_s: f64,
    /// Tokens generated over all images.
    pub tokens: usize,
}

/// Screening rates (images/s) by requests in flight, in `CONCURRENCIES` order.
struct Screening(Vec<(usize, f64)>);

impl Screening {
    fn one_at_a_time(&self) -> f64 {
        self.0[0].1
    }

    fn at(&self, concurrency: usize) -> f64 {
        self.0
            .iter()
            .find(|(c, _)| *c == concurrency)
            .map(|x| x.1)
            .unwrap_or(f64::NAN)
    }
}

/// A line of the report's table.
struct Row {
    what: String,
    images_per_s: f64,
    note: String,
}

pub(super) async fn run(
    settings: &Settings,
    config: EngineConfig,
    args: &BenchArgs,
) -> anyhow::Result<ExitCode> {
    let images = pictures::decoded(args.images, &settings.image)?;
    let config = sized_for_bench(config, args.explain_tokens);
    let bare = bare_loop(&config, &images).await?;

    let engine = Engine::start(config).await.context("starting the engine")?;
    let info = engine.info().clone();
    warm_up(&engine, &images).await?;
    let screening = screening(&engine, &images).await?;
    let full = full_generation(&engine, &images).await?;
    let rss = report::peak_rss_mib();

    let rows = rows(&screening, &full, bare, images.len());
    let body = render(&info, images.len(), &rows, rss);
    println!("{body}");
    report::update(&args.report, &SECTION, &body)?;
    eprintln!("bench: wrote {}", args.report.display());
    Ok(ExitCode::SUCCESS)
}

/// Room for 16 requests in flight, and the description length asked for.
fn sized_for_bench(mut config: EngineConfig, explain_tokens: u32) -> EngineConfig {
    config.engine.max_in_flight = 16;
    config.engine.n_seq_max = 16 * crate::engine::SEQS_PER_REQUEST;
    config.engine.n_ctx = 16384;
    config.max_explain_tokens = explain_tokens;
    config
}

/// The bare loop runs first, alone in the process, on its own model copy;
/// returns images/s.
async fn bare_loop(config: &EngineConfig, images: &[DecodedImage]) -> anyhow::Result<f64> {
    eprintln!("bench: bare llama.cpp loop, {} images", images.len());
    let config = config.clone();
    let images = images.to_vec();
    tokio::task::spawn_blocking(move || bare::run(&config, &images))
        .await
        .context("bare loop thread")?
}

fn screening_tasks() -> Tasks {
    Tasks {
        explain: Explain::Never,
        ..Tasks::screening(1.0)
    }
}

/// First-touch page faults and graph allocation, out of the timings.
async fn warm_up(engine: &Engine, images: &[DecodedImage]) -> anyhow::Result<()> {
    measure(engine, &images[..1], &screening_tasks(), 1).await?;
    Ok(())
}

async fn screening(engine: &Engine, images: &[DecodedImage]) -> anyhow::Result<Screening> {
    let tasks = screening_tasks();
    let mut by_conc = Vec::new();
    for conc in CONCURRENCIES {
        eprintln!("bench: screening, {conc} in flight");
        let measured = measure(engine, images, &tasks, conc).await?;
        by_conc.push((conc, measured.images_per_s));
    }
    Ok(Screening(by_conc))
}

async fn full_generation(engine: &Engine, images: &[DecodedImage]) -> anyhow::Result<Throughput> {
    let full = Tasks {
        explain: Explain::Always,
        ..Tasks::screening(1.0)
    };
    eprintln!("bench: full generation, {FULL_CONCURRENCY} in flight");
    measure(engine, images, &full, FULL_CONCURRENCY).await
}

/// Analyses all images with `concurrency` requests in flight.
pub(super) async fn measure(
    engine: &Engine,
    images: &[DecodedImage],
    tasks: &Tasks,
    concurrency: usize,
) -> anyhow::Result<Throughput> {
    let started = Instant::now();
    let results = stream::iter(images.iter().cloned())
        .map(|image| {
            let tasks = tasks.clone();
            async move { engine.analyze(AnalysisRequest { image, tasks }).await }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut tokens = 0;
    for r in results {
        tokens += r?.generated_tokens;
    }
    Ok(Throughput {
        images_per_s: images.len() as f64 / elapsed,
        tokens,
    })
}

fn rows(screening: &Screening, full: &Throughput, bare: f64, images: usize) -> Vec<Row> {
    let one_at_a_time = screening.one_at_a_time();
    let mut rows: Vec<Row> = screening
        .0
        .iter()
        .map(|&(conc, rate)| Row {
            what: format!("screening, {conc} in flight"),
            images_per_s: rate,
            note: format!("{:.2}x one at a time", rate / one_at_a_time),
        })
        .collect();
    rows.push(Row {
        what: format!(
            "full generation ({} tokens on average), {FULL_CONCURRENCY} in flight",
            full.tokens / images
        ),
        images_per_s: full.images_per_s,
        note: format!(
            "screening is {:.2}x faster",
            screening.at(FULL_CONCURRENCY) / full.images_per_s
        ),
    });
    rows.push(Row {
        what: "bare llama.cpp loop, one at a time".into(),
        images_per_s: bare,
        note: format!(
            "engine overhead at 1 in flight: {:+.1} %",
            (bare / one_at_a_time - 1.0) * 100.0
        ),
    });
    rows
}

fn render(info: &EngineInfo, images: usize, rows: &[Row], rss: f64) -> String {
    let threads = super::threads();
    let mut table = String::new();
    table.push_str("| measurement | images/s | |\n|---|---:|---|\n");
    for r in rows {
        table.push_str(&format!(
            "| {} | {:.2} | {} |\n",
            r.what, r.images_per_s, r.note
        ));
    }
    table.push_str(&format!(
        "\nPeak RSS of the process (engine and bare loop, both models loaded): {rss:.0} MiB.\n"
    ));
    let header = format!(
        "Bench-size model: hidden 1024, 8 layers, 32 000-token vocabulary, F16; {} image tokens per image; \
         {images} images of 256x256 per measurement; CPU, {threads} threads; chat template {}.\n\n",
        info.image_tokens,
        info.chat_template
    );
    format!("{header}{table}")
}

#[cfg(test)]
mod tests {
    use super::{rows, Screening, Throughput};

    #[test]
    fn rows_compare_with_one_at_a_time_and_screening_at_the_same_concurrency() {
        let screening = Screening(vec![(1, 2.0), (4, 4.0), (8, 6.0), (16, 8.0)]);
        let full = Throughput {
            images_per_s: 3.0,
            tokens: 160,
        };
        let rows = rows(&screening, &full, 2.5, 16);
        let lines: Vec<_> = rows
            .iter()
            .map(|r| format!("{} | {} | {}", r.what, r.images_per_s, r.note))
            .collect();
        assert_eq!(
            lines,
            [
                "screening, 1 in flight | 2 | 1.00x one at a time",
                "screening, 4 in flight | 4 | 2.00x one at a time",
                "screening, 8 in flight | 6 | 3.00x one at a time",
                "screening, 16 in flight | 8 | 4.00x one at a time",
                "full generation (10 tokens on average), 8 in flight | 3 | screening is 2.00x faster",
                "bare llama.cpp loop, one at a time | 2.5 | engine overhead at 1 in flight: +25.0 %",
            ]
        );
    }
}
