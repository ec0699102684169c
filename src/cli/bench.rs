//! `dfa bench`: engine throughput on the bench-size model, all figures from
//! one run so their ratios are comparable on a noisy machine. Results go to
//! stdout and into docs/BENCHMARKS.md between this benchmark's markers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use futures::stream::{self, StreamExt};

use super::setup::load_settings;
use crate::engine::{AnalysisRequest, Backend, Engine, EngineConfig, Explain, Tasks};
use crate::intake::{decode_image, DecodedImage};
use crate::model::tiny::{generate, GeneratedModel, ModelShape};

mod bare;
mod train;
mod worker;

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
    /// Requests for the instant-engine worker measurement.
    #[arg(long, default_value_t = 5000)]
    instant_requests: usize,
}

struct Row {
    what: String,
    images_per_s: f64,
    note: String,
}

pub async fn run(config_dir: &Path, args: BenchArgs) -> anyhow::Result<ExitCode> {
    let (settings, prompts) = load_settings(config_dir)?;
    let model = GeneratedModel::in_dir(&args.model_dir);
    if !model.exists() {
        eprintln!(
            "bench: generating the bench-size model in {}",
            args.model_dir.display()
        );
        generate(
            &args.model_dir,
            &ModelShape::bench(),
            &prompts.all_texts(),
            crate::model::files::TINY_SEED,
        )?;
    }
    if args.train {
        return run_train_bench(&settings, &prompts, &model, &args);
    }
    if args.worker {
        let config = EngineConfig::from_settings(
            &settings,
            model.gguf.clone(),
            model.mmproj.clone(),
            None,
            prompts,
        );
        return run_worker_bench(&settings, config, &args).await;
    }
    let images = bench_images(args.images, &settings.image)?;
    let mut config = EngineConfig::from_settings(
        &settings,
        model.gguf.clone(),
        model.mmproj.clone(),
        None,
        prompts,
    );
    config.engine.max_in_flight = 16;
    config.engine.n_seq_max = 16 * crate::engine::SEQS_PER_REQUEST;
    config.engine.n_ctx = 16384;
    config.max_explain_tokens = args.explain_tokens;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);

    // The bare loop runs first, alone in the process, on its own model copy.
    eprintln!("bench: bare llama.cpp loop, {} images", images.len());
    let bare_config = config.clone();
    let bare_images = images.clone();
    let bare = tokio::task::spawn_blocking(move || bare::run(&bare_config, &bare_images))
        .await
        .context("bare loop thread")??;

    let engine = Engine::start(config).await.context("starting the engine")?;
    let info = engine.info().clone();
    let screening = Tasks {
        explain: Explain::Never,
        ..Tasks::screening(1.0)
    };
    // Warm-up: first-touch page faults and graph allocation out of the timings.
    measure(&engine, &images[..1], &screening, 1).await?;

    let mut rows = Vec::new();
    let mut by_conc = Vec::new();
    for conc in [1usize, 4, 8, 16] {
        eprintln!("bench: screening, {conc} in flight");
        let (rate, _) = measure(&engine, &images, &screening, conc).await?;
        by_conc.push((conc, rate));
        rows.push(Row {
            what: format!("screening, {conc} in flight"),
            images_per_s: rate,
            note: format!("{:.2}x one at a time", rate / by_conc[0].1),
        });
    }
    let full = Tasks {
        explain: Explain::Always,
        ..Tasks::screening(1.0)
    };
    eprintln!("bench: full generation, 8 in flight");
    let (full_rate, tokens) = measure(&engine, &images, &full, 8).await?;
    let screen8 = by_conc
        .iter()
        .find(|(c, _)| *c == 8)
        .map(|x| x.1)
        .unwrap_or(f64::NAN);
    rows.push(Row {
        what: format!(
            "full generation ({} tokens on average), 8 in flight",
            tokens / images.len()
        ),
        images_per_s: full_rate,
        note: format!("screening is {:.2}x faster", screen8 / full_rate),
    });
    rows.push(Row {
        what: "bare llama.cpp loop, one at a time".into(),
        images_per_s: bare,
        note: format!(
            "engine overhead at 1 in flight: {:+.1} %",
            (bare / by_conc[0].1 - 1.0) * 100.0
        ),
    });
    let rss = peak_rss_mib();

    let mut table = String::new();
    table.push_str("| measurement | images/s | |\n|---|---:|---|\n");
    for r in &rows {
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
         {} images of 256x256 per measurement; CPU, {threads} threads; chat template {}.\n\n",
        info.image_tokens,
        images.len(),
        info.chat_template
    );
    let body = format!("{header}{table}");
    println!("{body}");
    update_report(&args.report, &body)?;
    eprintln!("bench: wrote {}", args.report.display());
    Ok(ExitCode::SUCCESS)
}

async fn run_worker_bench(
    settings: &crate::settings::Settings,
    config: EngineConfig,
    args: &BenchArgs,
) -> anyhow::Result<ExitCode> {
    let pngs = bench_pngs(args.images)?;
    let engine = Engine::start(config).await.context("starting the engine")?;
    eprintln!(
        "bench: worker path, {} images on the bench model, then {} instant requests",
        pngs.len(),
        args.instant_requests
    );
    let f = worker::run(settings, engine, &pngs, args.instant_requests).await?;
    let rss = peak_rss_mib();
    let body = format!(
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
    );
    println!("{body}");
    update_report_section(
        &args.report,
        "worker",
        "Worker (`dfa bench --worker`)",
        "scripts/bench --worker",
        &body,
    )?;
    Ok(ExitCode::SUCCESS)
}

fn run_train_bench(
    settings: &crate::settings::Settings,
    prompts: &crate::domain::prompts::Prompts,
    bench_model: &GeneratedModel,
    args: &BenchArgs,
) -> anyhow::Result<ExitCode> {
    let tiny =
        crate::model::files::ensure_tiny_model(Path::new(&settings.model.tiny_dir), prompts)?;
    eprintln!("bench: training on the tiny model");
    let small = train::measure(
        settings,
        "tiny (hidden 64, 2 layers)",
        &tiny.gguf,
        &tiny.mmproj,
        prompts,
        32,
    )?;
    eprintln!("bench: training on the bench-size model");
    let big = train::measure(
        settings,
        "bench-size (hidden 1024, 8 layers, 32k vocabulary)",
        &bench_model.gguf,
        &bench_model.mmproj,
        prompts,
        args.images.clamp(2, 8),
    )?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut body = format!(
        "Rust trainer (candle, CPU, {threads} threads, F32): LoRA rank 8 on attn_q/k/v/output, batch 4, AdamW; \
         examples are a detection and a classification turn per image (loss on the answer tokens only). \
         One warm-up batch is excluded.\n\n\
         | model | tokens/example | examples | steps/s | tokens/s | training memory (graph of one example) | peak RSS so far |\n\
         |---|---:|---:|---:|---:|---:|---:|\n"
    );
    for m in [&small, &big] {
        body.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.0} | {:.0} MiB | {:.0} MiB |\n",
            m.label,
            m.tokens_per_example,
            m.report.examples,
            m.report.steps_per_s(),
            m.report.tokens_per_s(),
            m.step_mib,
            m.rss_mib
        ));
    }
    // Calibrate the activation count on the bench-size run, then scale it to 7B.
    let seq = big.tokens_per_example as f64;
    let bench_formula = train::estimate(1024.0, 8.0, 2816.0, 16.0, 32000.0, 8.0, seq);
    let factor = (big.step_mib / 1024.0) / bench_formula.activations_f32_gib;
    let e = train::estimate(4096.0, 32.0, 11008.0, 32.0, 32000.0, 16.0, 700.0);
    let act = e.activations_f32_gib * factor;
    let total = e.base_f32_gib + e.lora_state_mib / 1024.0 + act;
    let with_bf16 = total - (e.base_f32_gib - e.base_bf16_gib);
    // An 80 GB GPU holds 74.5 GiB.
    let verdict = match (total < 74.5, with_bf16 < 74.5) {
        (true, _) => "so a 7B LoRA fits one 80 GB GPU as the trainer is today".to_string(),
        (false, true) => format!(
            "so a 7B LoRA does not fit one 80 GB GPU with F32 weights, but would with BF16 weights ({with_bf16:.0} GiB)"
        ),
        (false, false) => format!(
            "so a 7B LoRA needs activation recomputation or a fused attention backward before it fits one 80 GB GPU (BF16 weights alone: {with_bf16:.0} GiB)"
        ),
    };
    body.push_str(&format!(
        "\nEstimate (computed, not measured) for a LLaMA-7B base (hidden 4096, 32 layers, FFN 11008) at rank 16 on the four \
         attention projections, one 700-token sequence (576 image tokens + text). Base weights: {:.1} GiB in F32 as the trainer \
         loads them today ({:.1} GiB in BF16). LoRA weights + gradients + AdamW moments: {:.0} MiB. Activations and gradients \
         kept for the backward pass: the textbook count (34·E + 5·heads·T + 2·FFN values per token and layer) gives {:.1} GiB, \
         and this run measured {:.1}x that count on the bench-size model (candle keeps every intermediate of the unfused \
         RoPE, softmax and RMSNorm), so about {:.0} GiB per sequence. \
         Total: about {:.0} GiB at any batch size (gradients are accumulated one example at a time), {verdict}. \
         The tiny and bench-size models train as they are.\n",
        e.base_f32_gib,
        e.base_bf16_gib,
        e.lora_state_mib,
        e.activations_f32_gib,
        factor,
        act,
        total,
    ));
    println!("{body}");
    update_report_section(
        &args.report,
        "train",
        "LoRA training (`dfa bench --train`)",
        "scripts/bench --train",
        &body,
    )?;
    Ok(ExitCode::SUCCESS)
}

fn bench_pngs(n: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    (0..n as u32)
        .map(|i| {
            let img = bench_picture(i);
            let mut png = std::io::Cursor::new(Vec::new());
            img.write_to(&mut png, image::ImageFormat::Png)?;
            Ok(png.into_inner())
        })
        .collect()
}

fn bench_picture(i: u32) -> image::RgbImage {
    image::RgbImage::from_fn(256, 256, |x, y| {
        image::Rgb([
            (x ^ (i * 40)) as u8,
            (y + i * 13) as u8,
            ((x * y) >> 6) as u8 ^ i as u8,
        ])
    })
}

/// Analyses all images with `concurrency` requests in flight; returns
/// (images/s, tokens generated).
async fn measure(
    engine: &Engine,
    images: &[DecodedImage],
    tasks: &Tasks,
    concurrency: usize,
) -> anyhow::Result<(f64, usize)> {
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
    Ok((images.len() as f64 / elapsed, tokens))
}

fn bench_images(
    n: usize,
    limits: &crate::settings::ImageSettings,
) -> anyhow::Result<Vec<DecodedImage>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n as u32 {
        let img = image::RgbImage::from_fn(256, 256, |x, y| {
            image::Rgb([
                (x ^ (i * 40)) as u8,
                (y + i * 13) as u8,
                ((x * y) >> 6) as u8 ^ i as u8,
            ])
        });
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png)?;
        out.push(decode_image(png.get_ref(), limits)?);
    }
    Ok(out)
}

/// Peak resident set size (VmHWM) of this process.
fn peak_rss_mib() -> f64 {
    proc_status_mib("VmHWM:")
}

/// A memory line of /proc/self/status (in kB there), in MiB.
fn proc_status_mib(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn update_report(path: &Path, body: &str) -> anyhow::Result<()> {
    update_report_section(
        path,
        "engine",
        "Engine (`dfa bench`)",
        "scripts/bench",
        body,
    )
}

/// Replaces this benchmark's section of the report (between its markers).
fn update_report_section(
    path: &Path,
    key: &str,
    title: &str,
    command: &str,
    body: &str,
) -> anyhow::Result<()> {
    let start = format!("<!-- dfa bench: {key} (start) -->");
    let end = format!("<!-- dfa bench: {key} (end) -->");
    let section = format!(
        "{start}\n## {title}\n\nCommand: `{command}` (`cargo run --locked -- bench`; dependencies are built at opt-level 3). Measured {}.\n\n{body}{end}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n\n".into());
    let new = match (old.find(&start), old.find(&end)) {
        (Some(a), Some(b)) if a < b => format!("{}{section}{}", &old[..a], &old[b + end.len()..]),
        _ => format!("{}\n{section}\n", old.trim_end()),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}
