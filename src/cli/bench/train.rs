//! `dfa bench --train`: LoRA training throughput of the Rust trainer on the
//! tiny and bench-size models, peak memory, and the computed memory a 7B base
//! would need.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use super::estimate::SevenB;
use super::report::{self, Section};
use super::{pictures, BenchArgs};
use crate::domain::prompts::Prompts;
use crate::intake::decode_image;
use crate::model::tiny::GeneratedModel;
use crate::settings::Settings;
use crate::trainer::base::BaseModel;
use crate::trainer::featurize::Featurizer;
use crate::trainer::lora::{LoraSet, Projection};
use crate::trainer::{self, Example, TrainConfig, TrainReport};

const SECTION: Section = Section {
    key: "train",
    title: "LoRA training (`dfa bench --train`)",
    command: "scripts/bench --train",
};

pub(super) fn run(
    settings: &Settings,
    prompts: &Prompts,
    bench_model: &GeneratedModel,
    args: &BenchArgs,
) -> anyhow::Result<ExitCode> {
    let runs = Runs::measure(settings, prompts, bench_model, args.images)?;
    let seven_b = SevenB::calibrated(runs.bench.tokens_per_example, runs.bench.step_mib);
    let body = format!("{}{}", runs.table(), seven_b.paragraph());
    println!("{body}");
    report::update(&args.report, &SECTION, &body)?;
    Ok(ExitCode::SUCCESS)
}

/// Both training runs: the tiny model, then the bench-size one.
struct Runs {
    tiny: Measured,
    bench: Measured,
}

impl Runs {
    fn measure(
        settings: &Settings,
        prompts: &Prompts,
        bench_model: &GeneratedModel,
        images: usize,
    ) -> anyhow::Result<Runs> {
        let tiny =
            crate::model::files::ensure_tiny_model(Path::new(&settings.model.tiny_dir), prompts)?;
        eprintln!("bench: training on the tiny model");
        let small = measure(
            settings,
            "tiny (hidden 64, 2 layers)",
            &tiny.gguf,
            &tiny.mmproj,
            prompts,
            32,
        )?;
        eprintln!("bench: training on the bench-size model");
        let big = measure(
            settings,
            "bench-size (hidden 1024, 8 layers, 32k vocabulary)",
            &bench_model.gguf,
            &bench_model.mmproj,
            prompts,
            images.clamp(2, 8),
        )?;
        Ok(Runs {
            tiny: small,
            bench: big,
        })
    }

    fn table(&self) -> String {
        let threads = super::threads();
        let mut body = format!(
            "Rust trainer (candle, CPU, {threads} threads, F32): LoRA rank 8 on attn_q/k/v/output, batch 4, AdamW; \
             examples are a detection and a classification turn per image (loss on the answer tokens only). \
             One warm-up batch is excluded.\n\n\
             | model | tokens/example | examples | steps/s | tokens/s | training memory (graph of one example) | peak RSS so far |\n\
             |---|---:|---:|---:|---:|---:|---:|\n"
        );
        for m in [&self.tiny, &self.bench] {
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
        body
    }
}

struct Measured {
    label: String,
    tokens_per_example: usize,
    report: TrainReport,
    rss_mib: f64,
    /// Peak RSS growth during training (MiB): one example's graph and
    /// gradients, as batches accumulate gradients example by example.
    step_mib: f64,
}

fn config() -> TrainConfig {
    TrainConfig {
        targets: vec![Projection::Q, Projection::K, Projection::V, Projection::O],
        rank: 8,
        alpha: 16.0,
        dropout: 0.05,
        learning_rate: 2e-3,
        weight_decay: 0.0,
        epochs: 1,
        batch_size: 4,
        seed: 42,
        train_projector: false,
        weights_dtype: Default::default(),
    }
}

/// Detection and classification turns on `n` generated pictures.
fn examples(
    settings: &Settings,
    gguf: &Path,
    mmproj: &Path,
    prompts: &Prompts,
    n: usize,
) -> anyhow::Result<Vec<Example>> {
    let mut f = Featurizer::load(
        gguf,
        mmproj,
        prompts.clone(),
        settings.model.chat_template,
        0,
    )?;
    let mut out = Vec::new();
    for (i, png) in pictures::pngs(n)?.iter().enumerate() {
        let img = decode_image(png, &settings.image).context("bench image")?;
        let emb = Arc::new(f.encode_image(&img)?);
        let p = f.prompts().clone();
        let fake = i % 2 == 0;
        out.push(f.example(
            Some(emb.clone()),
            &[],
            &p.detection.question,
            if fake { "Yes." } else { "No." },
        )?);
        out.push(f.example(
            Some(emb),
            &[],
            &p.classification.question,
            &p.classification.answers.face_swap,
        )?);
    }
    Ok(out)
}

fn measure(
    settings: &Settings,
    label: &str,
    gguf: &Path,
    mmproj: &Path,
    prompts: &Prompts,
    images: usize,
) -> anyhow::Result<Measured> {
    let examples = examples(settings, gguf, mmproj, prompts, images)?;
    let device = trainer::device();
    let base = BaseModel::load(gguf, &device)?;
    let cfg = config();
    let mut lora = LoraSet::init(
        &base.config,
        &cfg.targets,
        cfg.rank,
        cfg.alpha,
        cfg.seed,
        &device,
    )?;
    let before = report::current_rss_mib();
    // One warm-up step outside the timing (allocation, thread pools).
    trainer::train(
        &base,
        &mut lora,
        &examples[..cfg.batch_size.min(examples.len())],
        &cfg,
        |_, _, _| {},
    )?;
    let trained = trainer::train(&base, &mut lora, &examples, &cfg, |_, _, _| {})?;
    let peak = report::peak_rss_mib();
    Ok(Measured {
        step_mib: (peak - before).max(0.0),
        label: label.to_string(),
        tokens_per_example: examples.iter().map(Example::len).sum::<usize>()
            / examples.len().max(1),
        report: trained,
        rss_mib: report::peak_rss_mib(),
    })
}
