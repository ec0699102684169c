//! The long steps of a retraining run: featurizing with llama.cpp, training
//! with candle (both blocking), and scoring with the serving engine.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use anyhow::Context;

use super::evaluate::{Prediction, Scores};
use super::items::Item;
use super::plan::{describe, load_image};
use crate::domain::prompts::Prompts;
use crate::domain::verdict::Labelled;
use crate::engine::Engine;
use crate::eval::{predict, EvalItem};
use crate::images::ImageStore;
use crate::intake::DecodedImage;
use crate::metrics::report::{report, Report, Truth};
use crate::model::files::ModelFiles;
use crate::settings::Settings;
use crate::trainer::base::BaseModel;
use crate::trainer::featurize::Featurizer;
use crate::trainer::lora::LoraSet;
use crate::trainer::projector::ProjectorSet;
use crate::trainer::vision::VisionTower;
use crate::trainer::ExampleImage;
use crate::trainer::{self, Example, TrainConfig, TrainReport};

pub(super) fn bar(show: bool, len: usize, what: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{msg:>18} [{bar:30}] {pos}/{len} {elapsed_precise} {prefix}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(what.to_string());
    pb
}

/// The training examples, and the items skipped for an unreadable image.
pub(super) struct Featurized {
    pub examples: Vec<Example>,
    pub skipped: Vec<String>,
}

/// Tokenized turns with the images as training needs them (blocking):
/// llama.cpp's image embeddings through `mmproj` (the projector training
/// starts from), or, when the projector is trained too (`tower`), the frozen
/// vision tower's features computed in candle (they agree with llama.cpp's:
/// tests/projector.rs; the tower is the same in every mmproj of the model).
pub(super) fn featurize(
    settings: &Settings,
    model: &ModelFiles,
    prompts: &Prompts,
    items: &[Item],
    mmproj: &Path,
    tower: bool,
    progress: bool,
) -> anyhow::Result<Featurized> {
    let mut f = Featurizer::load(
        &model.gguf,
        mmproj,
        prompts.clone(),
        settings.model.chat_template,
        settings.engine.threads,
    )?;
    let tower = match tower {
        true => Some(VisionTower::load(mmproj, &trainer::device())?),
        false => None,
    };
    let images = ImageStore::new(&settings.image_store.dir);
    let pb = bar(progress, items.len(), "encoding images");
    let (mut examples, mut skipped) = (Vec::new(), Vec::new());
    for item in items {
        pb.inc(1);
        let image = match load_image(item, &images, settings) {
            Ok(i) => i,
            Err(e) => {
                let line = format!("{}: {e} (skipped)", describe(item));
                eprintln!("dfa retrain: {line}");
                skipped.push(line);
                continue;
            }
        };
        let encoded = match &tower {
            Some(t) => ExampleImage::Features(Arc::new(t.features(&image)?)),
            None => ExampleImage::Embedded(Arc::new(f.encode_image(&image)?)),
        };
        for (i, turn) in item.turns.iter().enumerate() {
            let history = if item.history_per_turn {
                &item.turns[..i]
            } else {
                &[]
            };
            examples.push(f.example_with(
                Some(encoded.clone()),
                history,
                &turn.question,
                &turn.answer,
            )?);
        }
    }
    pb.finish_and_clear();
    Ok(Featurized { examples, skipped })
}

/// A trained candidate, not yet written to the adapter store.
pub(super) struct Trained {
    pub lora: LoraSet,
    pub report: TrainReport,
    /// The base model's architecture, recorded in the adapter file.
    pub architecture: String,
    /// Whether training started from the active adapter's weights.
    pub continued: bool,
    /// The projector trained with the LoRA (`train_projector`), and the
    /// mmproj it started from (the copy written keeps its other tensors).
    pub projector: Option<(ProjectorSet, PathBuf)>,
}

/// Where training starts: the active adapter's LoRA and projector when
/// continuing from it, and the mmproj whose projector is trained.
pub(super) struct Start<'a> {
    pub parent: Option<&'a Path>,
    pub mmproj: &'a Path,
}

/// Trains the candidate (blocking); continues from the active adapter's
/// weights when asked and when their shapes fit.
pub(super) fn train_candidate(
    model: &ModelFiles,
    start: Start<'_>,
    examples: &[Example],
    config: &TrainConfig,
    progress: bool,
) -> anyhow::Result<Trained> {
    let parent = start.parent;
    let device = trainer::device();
    let base = BaseModel::load_as(&model.gguf, &device, config.weights_dtype)?;
    let fresh = || {
        LoraSet::init(
            &base.config,
            &config.targets,
            config.rank,
            config.alpha,
            config.seed,
            &device,
        )
    };
    let (mut lora, continued) = match parent.map(|p| LoraSet::from_gguf(p, &base.config, &device)) {
        Some(Ok(l))
            if l.rank == config.rank
                && l.targets() == config.targets
                && l.alpha == config.alpha =>
        {
            (l, true)
        }
        _ => (fresh()?, false),
    };
    let pb = bar(
        progress,
        examples.len().div_ceil(config.batch_size.max(1)) * config.epochs,
        "training",
    );
    let projector = match config.train_projector {
        true => Some(ProjectorSet::from_mmproj(start.mmproj, &device)?),
        false => None,
    };
    let report = trainer::train_with(
        &base,
        &mut lora,
        projector.as_ref(),
        examples,
        config,
        |_, _, loss| {
            pb.set_prefix(format!("loss {loss:.4}"));
            pb.inc(1);
        },
    )?;
    pb.finish_and_clear();
    Ok(Trained {
        lora,
        report,
        architecture: base.config.architecture.clone(),
        continued,
        projector: projector.map(|p| (p, start.mmproj.to_path_buf())),
    })
}

/// One model's scores on the evaluation items: the gate's tallies and the
/// DFA-Bench report of the held-out split (`metrics::report`).
pub(super) struct Scored {
    pub scores: Scores,
    pub report: Report,
}

/// A held-out or corrected item as the evaluator sees it: its truth only
/// (the gate asks for no explanation and no conversation, to stay quick).
fn eval_item(item: &Item) -> EvalItem {
    EvalItem {
        id: item.key.clone(),
        line: match item.origin {
            super::items::Origin::Dataset { line } => line,
            super::items::Origin::Correction { .. } => 0,
        },
        source: None,
        image: PathBuf::new(),
        truth: Truth {
            label: item.label,
            forgery_type: item.forgery_type,
            ..Truth::default()
        },
        conversation: Vec::new(),
    }
}

/// Scores the engine's current adapter on the evaluation items through the
/// DFA-Bench evaluator (`eval::predict`, what `dfa eval` runs).
pub(super) async fn score(
    engine: &Engine,
    images: &[(usize, Arc<DecodedImage>)],
    heldout: &[Item],
    corrected: &[Item],
    threshold: f32,
    progress: bool,
    what: &str,
) -> anyhow::Result<Scored> {
    let pb = bar(progress, images.len(), what);
    let all: Vec<&Item> = heldout.iter().chain(corrected).collect();
    let mut predictions = futures::stream::iter(images.iter().cloned())
        .map(|(i, img)| {
            let engine = engine.clone();
            let item = eval_item(all[i]);
            async move { (i, predict(&engine, &item, (*img).clone()).await) }
        })
        .buffer_unordered(engine.info().capacity.max(1));
    let mut by_index = vec![None; all.len()];
    while let Some((i, result)) = predictions.next().await {
        pb.inc(1);
        by_index[i] = Some(result.context("evaluating")?);
    }
    pb.finish_and_clear();
    let mut scores = Scores::default();
    let mut held_out_predictions = Vec::new();
    for (i, p) in by_index.into_iter().enumerate() {
        let Some(p) = p else { continue };
        // The rule verdicts are labelled by, so the gate judges what workers serve.
        let labelled = Labelled::from_scores(p.p_fake.map(|x| x as f32), p.type_scores, threshold);
        let tally = Prediction {
            label: labelled.label,
            forgery_type: labelled.forgery_type,
        };
        if i < heldout.len() {
            scores.add_heldout(&heldout[i], tally);
            held_out_predictions.push(p);
        } else {
            scores.add_corrected(&corrected[i - heldout.len()], tally);
        }
    }
    let report = report(&held_out_predictions, f64::from(threshold), GATE_TARGET_FPR);
    scores.heldout_auc = report.detection.roc_auc;
    Ok(Scored { scores, report })
}

/// The false-positive rate the held-out report finds a threshold for.
const GATE_TARGET_FPR: f64 = 0.01;
