//! LoRA training in Rust (candle) for the model the workers serve: the base
//! LLM comes from the serving GGUF, the image embeddings from llama.cpp's own
//! mtmd encoder (`featurize`), and the result is a GGUF adapter llama.cpp
//! loads. The loss covers the answer tokens only.
//!
//! DFA-GPT's recipe also trains the projector (`TrainConfig::train_projector`):
//! the frozen vision tower runs in candle (`vision`) to give pre-projector
//! features, the projector (`projector`) runs in the graph with the LoRA, and
//! it is written back as a new mmproj (`mmproj`).

pub mod adapter_file;
pub mod base;
pub mod clip_image;
pub mod example;
pub mod featurize;
pub mod ggml_cpu;
pub mod lora;
pub mod mmproj;
pub mod peft;
pub mod projector;
pub mod shape;
pub mod vision;

use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, D};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

pub use crate::domain::lora::TrainConfig;
use base::BaseModel;
pub use example::{Example, ExampleImage, ImageEmbedding, TowerFeatures};
use lora::LoraSet;
use projector::ProjectorSet;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("base model: {0}")]
    Base(String),
    #[error("adapter: {0}")]
    Adapter(String),
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
    #[error("{0}")]
    Io(String),
    #[error("llama.cpp: {0}")]
    Llama(String),
    #[error("vision tower: {0}")]
    Vision(String),
    #[error("projector: {0}")]
    Projector(String),
    #[error("nothing to train on")]
    NoExamples,
    #[error(transparent)]
    Write(#[from] crate::model::gguf_write::GgufWriteError),
}

/// Summed negative log-likelihood of the answer tokens, and their count.
pub fn answer_nll(
    base: &BaseModel,
    lora: Option<&LoraSet>,
    example: &Example,
) -> Result<(Tensor, usize), TrainError> {
    answer_nll_with(base, lora, None, example)
}

/// `answer_nll` with the image's tower features (if the example carries
/// them) projected by `projector`.
pub fn answer_nll_with(
    base: &BaseModel,
    lora: Option<&LoraSet>,
    projector: Option<&ProjectorSet>,
    example: &Example,
) -> Result<(Tensor, usize), TrainError> {
    let targets = example.answer_tokens();
    if targets.is_empty() || example.prefix.is_empty() {
        return Err(TrainError::NoExamples);
    }
    let hidden = base.hidden(&example.embeddings_with(base, projector)?, lora)?;
    let rows = hidden.narrow(0, example.first_target_row(), targets.len())?;
    let logp = candle_nn::ops::log_softmax(&base.logits(&rows)?, D::Minus1)?;
    let ids = Tensor::new(targets, &base.device)?.unsqueeze(1)?;
    let nll = logp.gather(&ids, 1)?.sum_all()?.neg()?;
    Ok((nll, targets.len()))
}

/// Mean answer-token loss over `examples`, without gradients.
pub fn mean_loss(
    base: &BaseModel,
    lora: Option<&LoraSet>,
    examples: &[Example],
) -> Result<f64, TrainError> {
    mean_loss_with(base, lora, None, examples)
}

/// `mean_loss` with tower features projected by `projector`.
pub fn mean_loss_with(
    base: &BaseModel,
    lora: Option<&LoraSet>,
    projector: Option<&ProjectorSet>,
    examples: &[Example],
) -> Result<f64, TrainError> {
    let (mut total, mut n) = (0.0, 0);
    for ex in examples {
        let (nll, count) = answer_nll_with(base, lora, projector, ex)?;
        total += nll.to_scalar::<f32>()? as f64;
        n += count;
    }
    if n == 0 {
        return Err(TrainError::NoExamples);
    }
    Ok(total / n as f64)
}

/// What a training run did.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub examples: usize,
    pub steps: usize,
    pub epoch_losses: Vec<f64>,
    /// Tokens through the forward and backward pass (whole sequences).
    pub tokens: usize,
    pub seconds: f64,
}

impl TrainReport {
    pub fn tokens_per_s(&self) -> f64 {
        self.tokens as f64 / self.seconds.max(1e-9)
    }

    pub fn steps_per_s(&self) -> f64 {
        self.steps as f64 / self.seconds.max(1e-9)
    }
}

/// Trains `lora` in place with AdamW; `progress(step, total_steps, loss)`
/// after each step. Deterministic for a fixed seed on one device.
pub fn train(
    base: &BaseModel,
    lora: &mut LoraSet,
    examples: &[Example],
    config: &TrainConfig,
    progress: impl FnMut(usize, usize, f64),
) -> Result<TrainReport, TrainError> {
    train_with(base, lora, None, examples, config, progress)
}

/// `train` with a projector in the graph: examples carrying tower features
/// are projected by it, and with `config.train_projector` its weights are
/// trained with the LoRA (same optimizer and hyper-parameters; the LLM and
/// the vision tower stay frozen).
pub fn train_with(
    base: &BaseModel,
    lora: &mut LoraSet,
    projector: Option<&ProjectorSet>,
    examples: &[Example],
    config: &TrainConfig,
    mut progress: impl FnMut(usize, usize, f64),
) -> Result<TrainReport, TrainError> {
    if examples.is_empty() {
        return Err(TrainError::NoExamples);
    }
    let mut vars = lora.vars();
    if config.train_projector {
        let projector = projector.ok_or_else(|| {
            TrainError::Projector("train_projector is on but no projector was given".into())
        })?;
        // An example with llama.cpp's embeddings would bypass the projector
        // and silently contribute nothing to it.
        if let Some(i) = examples
            .iter()
            .position(|e| matches!(e.image, Some(ExampleImage::Embedded(_))))
        {
            return Err(TrainError::Projector(format!(
                "example {i} has post-projector embeddings; training the projector needs tower features"
            )));
        }
        vars.extend(projector.vars());
    }
    let started = Instant::now();
    let batch = config.batch_size.max(1);
    let steps_per_epoch = examples.len().div_ceil(batch);
    let total = steps_per_epoch * config.epochs;
    let mut opt = AdamW::new(
        vars.clone(),
        ParamsAdamW {
            lr: config.learning_rate,
            weight_decay: config.weight_decay,
            ..ParamsAdamW::default()
        },
    )?;
    lora.set_dropout(config.dropout, config.seed);
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..examples.len()).collect();
    let (mut step, mut tokens) = (0, 0);
    let mut epoch_losses = Vec::with_capacity(config.epochs);
    for _ in 0..config.epochs {
        order.shuffle(&mut rng);
        let (mut epoch_nll, mut epoch_n) = (0.0, 0);
        for chunk in order.chunks(batch) {
            // Gradient accumulation: one backward pass per example, so a
            // batch costs one example's graph in memory, not `batch` of them.
            let n: usize = chunk
                .iter()
                .map(|&i| examples[i].answer_tokens().len())
                .sum();
            let mut acc = GradStore::default();
            let mut value = 0.0;
            for &i in chunk {
                let (nll, _) = answer_nll_with(base, Some(lora), projector, &examples[i])?;
                let loss = (nll / n as f64)?;
                value += loss.to_scalar::<f32>()? as f64;
                tokens += examples[i].len();
                let grads = loss.backward()?;
                for var in &vars {
                    let Some(g) = grads.get(var.as_tensor()) else {
                        continue;
                    };
                    let sum = match acc.remove(var.as_tensor()) {
                        Some(a) => (a + g)?,
                        None => g.clone(),
                    };
                    acc.insert(var.as_tensor(), sum);
                }
            }
            opt.step(&acc)?;
            epoch_nll += value * n as f64;
            epoch_n += n;
            step += 1;
            progress(step, total, value);
        }
        epoch_losses.push(epoch_nll / epoch_n.max(1) as f64);
    }
    lora.disable_dropout();
    Ok(TrainReport {
        examples: examples.len(),
        steps: step,
        epoch_losses,
        tokens,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The gradient norm each LoRA tensor receives from one batch.
pub fn gradient_norms(
    base: &BaseModel,
    lora: &LoraSet,
    examples: &[Example],
) -> Result<Vec<(String, f64)>, TrainError> {
    let mut sum: Option<Tensor> = None;
    for ex in examples {
        let (nll, _) = answer_nll(base, Some(lora), ex)?;
        sum = Some(match sum {
            Some(s) => (s + nll)?,
            None => nll,
        });
    }
    let grads = sum.ok_or(TrainError::NoExamples)?.backward()?;
    let names = lora.named_tensors();
    let vars = lora.vars();
    let mut out = Vec::with_capacity(vars.len());
    for ((name, _), var) in names.into_iter().zip(vars) {
        let norm = match grads.get(var.as_tensor()) {
            Some(g) => g.sqr()?.sum_all()?.to_scalar::<f32>()?.sqrt() as f64,
            None => 0.0,
        };
        out.push((name, norm));
    }
    Ok(out)
}

/// The device training runs on: CUDA when built with it and present.
pub fn device() -> Device {
    #[cfg(feature = "cuda-trainer")]
    if let Ok(d) = Device::new_cuda(0) {
        return d;
    }
    Device::Cpu
}
