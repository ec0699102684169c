//! `dfa bench`: throughput on the bench-size model, all figures of one
//! benchmark from one run so their ratios are comparable on a noisy machine.
//! Each benchmark prints its results and writes them into its own section of
//! docs/BENCHMARKS.md. This file holds the arguments and the dispatch:
//! `engine` by default, `worker` with `--worker`, `train` with `--train`,
//! `serve` with `--serve`, `faces` with `--faces`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::setup::load_settings;
use crate::domain::prompts::Prompts;
use crate::engine::EngineConfig;
use crate::model::tiny::{generate, GeneratedModel, ModelShape};

mod bare;
mod engine;
mod estimate;
mod faces;
mod gpu;
mod pictures;
mod report;
mod scratch;
mod serve_follow_ups;
mod serve_queries;
mod train;
mod worker;
mod worker_path;

#[derive(Args)]
pub struct BenchArgs {
    /// Images per measurement.
    #[arg(long, default_value_t = 16)]
    images: usize,
    /// Tokens of the always-generated description in the full-generation run.
    #[arg(long, default_value_t = 64)]
    explain_tokens: u32,
    /// Where the bench-size model lives (generated if missing).
    #[arg(long, default_value = "models/bench")]
    model_dir: PathBuf,
    /// Markdown file to update.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    report: PathBuf,
    /// Benchmark the worker path (broker → worker → Postgres → results)
    /// instead of the engine; needs scripts/dev-up.
    #[arg(long)]
    worker: bool,
    /// Benchmark LoRA training (tiny and bench-size models) instead.
    #[arg(long)]
    train: bool,
    /// Benchmark `dfa serve`: `/api/verdicts` and `/api/stats` latency on
    /// generated verdicts (needs scripts/dev-up).
    #[arg(long)]
    serve: bool,
    /// Benchmark face detection (512², 1024², 4000²) and its share of a
    /// screening on the bench-size model instead; `--images` repetitions.
    #[arg(long)]
    faces: bool,
    /// The GPU figures (scripts/gpu-bench): screening at 1, 8 and 32 in
    /// flight, the description always generated at 32, follow-up time to
    /// first token and GPU memory, as JSON on stdout; writes no report.
    #[arg(long)]
    gpu: bool,
    /// Verdicts generated for `--serve`.
    #[arg(long, default_value_t = 1_000_000)]
    verdict_rows: u64,
    /// Requests for the instant-engine worker measurement.
    #[arg(long, default_value_t = 5000)]
    instant_requests: usize,
}

pub async fn run(config_dir: &Path, args: BenchArgs) -> anyhow::Result<ExitCode> {
    let (settings, prompts) = load_settings(config_dir)?;
    let model = bench_model(&args.model_dir, &prompts)?;
    if args.train {
        return train::run(&settings, &prompts, &model, &args);
    }
    let config = EngineConfig::from_settings(
        &settings,
        model.gguf.clone(),
        model.mmproj.clone(),
        None,
        prompts,
    );
    if args.worker {
        return worker::run(&settings, config, &args).await;
    }
    if args.serve {
        return serve_queries::run(&settings, config, &args).await;
    }
    if args.gpu {
        return gpu::run(&settings, config, &args).await;
    }
    if args.faces {
        return faces::run(&settings, config, &args).await;
    }
    engine::run(&settings, config, &args).await
}

/// The bench-size model in `dir`, generated first if it is not there.
fn bench_model(dir: &Path, prompts: &Prompts) -> anyhow::Result<GeneratedModel> {
    let model = GeneratedModel::in_dir(dir);
    if !model.exists() {
        eprintln!(
            "bench: generating the bench-size model in {}",
            dir.display()
        );
        generate(
            dir,
            &ModelShape::bench(),
            &prompts.all_texts(),
            crate::model::files::TINY_SEED,
        )?;
    }
    Ok(model)
}

/// The threads this machine offers (available parallelism), as the reports
/// quote them.
fn threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
