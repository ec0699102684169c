//! `dfa bench --train`: LoRA training throughput of the Rust trainer on the
//! tiny and bench-size models, peak memory, and the computed memory a 7B base
//! would need.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::domain::prompts::Prompts;
use crate::intake::decode_image;
use crate::settings::Settings;
use crate::trainer::base::BaseModel;
use crate::trainer::featurize::Featurizer;
use crate::trainer::lora::{LoraSet, Projection};
use crate::trainer::{self, Example, TrainConfig, TrainReport};

pub struct Measured {
    pub label: String,
    pub tokens_per_example: usize,
    pub report: TrainReport,
    pub rss_mib: f64,
    /// Peak RSS growth during training (MiB): one example's graph and
    /// gradients, as batches accumulate gradients example by example.
    pub step_mib: f64,
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
    for (i, png) in super::bench_pngs(n)?.iter().enumerate() {
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

pub fn measure(
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
    let before = current_rss_mib();
    // One warm-up step outside the timing (allocation, thread pools).
    trainer::train(
        &base,
        &mut lora,
        &examples[..cfg.batch_size.min(examples.len())],
        &cfg,
        |_, _, _| {},
    )?;
    let report = trainer::train(&base, &mut lora, &examples, &cfg, |_, _, _| {})?;
    let peak = super::peak_rss_mib();
    Ok(Measured {
        step_mib: (peak - before).max(0.0),
        label: label.to_string(),
        tokens_per_example: examples.iter().map(Example::len).sum::<usize>()
            / examples.len().max(1),
        report,
        rss_mib: super::peak_rss_mib(),
    })
}

fn current_rss_mib() -> f64 {
    super::proc_status_mib("VmRSS:")
}

/// Bytes the trainer as written (F32 everywhere) needs for a LLaMA base, and
/// with a BF16 base; activations per the usual per-layer count for one
/// sequence of `seq` tokens kept for backward (no recomputation).
pub struct Estimate {
    pub base_f32_gib: f64,
    pub base_bf16_gib: f64,
    pub lora_state_mib: f64,
    pub activations_f32_gib: f64,
}

pub fn estimate(
    n_embd: f64,
    n_layer: f64,
    n_ff: f64,
    n_head: f64,
    n_vocab: f64,
    rank: f64,
    seq: f64,
) -> Estimate {
    let params = n_vocab * n_embd * 2.0 + n_layer * (4.0 * n_embd * n_embd + 3.0 * n_embd * n_ff);
    let lora = n_layer * 4.0 * 2.0 * rank * n_embd;
    // Per layer, per token: ~34·E values (norms, projections, FFN inputs and
    // outputs) plus 5·heads·seq for the attention scores and softmax; F32.
    let per_layer = seq * (34.0 * n_embd + 5.0 * n_head * seq + 2.0 * n_ff) * 4.0;
    let gib = 1024.0f64.powi(3);
    Estimate {
        base_f32_gib: params * 4.0 / gib,
        base_bf16_gib: params * 2.0 / gib,
        // Weights, gradients and AdamW's two moments, F32.
        lora_state_mib: lora * 4.0 * 4.0 / 1024.0 / 1024.0,
        activations_f32_gib: per_layer * n_layer / gib,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn seven_b_estimate_matches_hand_arithmetic() {
        let e = super::estimate(4096.0, 32.0, 11008.0, 32.0, 32000.0, 16.0, 700.0);
        // LLaMA-7B has 6.74e9 parameters: 25.1 GiB in F32, 12.6 GiB in BF16.
        assert!((e.base_f32_gib - 25.1).abs() < 0.2, "{}", e.base_f32_gib);
        assert!((e.base_bf16_gib - 12.55).abs() < 0.1);
        // 16.8 M LoRA parameters × 4 copies × 4 bytes = 256 MiB.
        assert!(
            (e.lora_state_mib - 256.0).abs() < 1.0,
            "{}",
            e.lora_state_mib
        );
        // 700 × (34·4096 + 5·32·700 + 2·11008) × 4 bytes × 32 layers = 22.8 GiB.
        assert!(
            (e.activations_f32_gib - 22.8).abs() < 0.1,
            "{}",
            e.activations_f32_gib
        );
    }
}
