//! `dfa retrain`: corrections since the active adapter (+ a replay sample of
//! earlier ones, + an optional LLaVA dataset) → a candidate LoRA, evaluated
//! against the active adapter on the held-out split and the new corrections,
//! then promoted or rejected. Runs to completion; safe to run from cron.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::json;

use super::dataset::{parse_dataset, LineError};
use super::evaluate::{decide, Decision, Gate, Prediction, Scores};
use super::items::{correction_item, is_held_out, with_replay, ImageRef, Item, Origin};
use crate::engine::{sha256_file, AdapterSpec, Backend, Engine, EngineConfig, Explain, Tasks};
use crate::image_intake::{decode_image, DecodedImage};
use crate::image_store::ImageStore;
use crate::model_files::{adapter_spec, ModelFiles};
use crate::prompts::Prompts;
use crate::settings::Settings;
use crate::store::{AdapterRow, NewAdapter, Store};
use crate::trainer::base::BaseModel;
use crate::trainer::featurize::Featurizer;
use crate::trainer::lora::{write_adapter, LoraSet};
use crate::trainer::{self, Example, TrainConfig, TrainReport};
use crate::verdict::{Label, TypeScores};
use crate::worker::adapters::resolve_adapter_path;

#[derive(Debug, Clone, Default)]
pub struct RetrainOptions {
    pub dataset: Option<PathBuf>,
    /// A bad dataset line fails the job instead of being skipped.
    pub strict: bool,
    pub dry_run: bool,
    pub progress: bool,
}

/// What the job did, printed as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct RetrainReport {
    pub outcome: &'static str,
    pub message: String,
    pub active_adapter: Option<String>,
    pub new_corrections: usize,
    pub replayed_corrections: usize,
    pub dataset_items: usize,
    pub training_items: usize,
    pub heldout_items: usize,
    pub skipped: Vec<String>,
    pub candidate: Option<String>,
    pub train: Option<TrainReport>,
    pub candidate_scores: Option<Scores>,
    pub active_scores: Option<Scores>,
}

struct Plan {
    active: Option<AdapterRow>,
    watermark: i64,
    max_revision: i64,
    train: Vec<Item>,
    heldout: Vec<Item>,
    new_corrections: Vec<Item>,
    replayed: usize,
    dataset_items: usize,
    dataset: Option<(PathBuf, String)>,
    skipped: Vec<String>,
}

fn bar(show: bool, len: usize, what: &str) -> ProgressBar {
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

async fn plan(
    settings: &Settings,
    store: &Store,
    prompts: &Prompts,
    opts: &RetrainOptions,
) -> anyhow::Result<Plan> {
    let r = &settings.retrain;
    let active = store
        .active_adapter()
        .await
        .context("reading the adapter registry")?;
    let watermark = active
        .as_ref()
        .and_then(|a| a.training_data.get("max_revision").and_then(|v| v.as_i64()))
        .unwrap_or(0);
    let rows = store
        .standing_corrections()
        .await
        .context("reading corrections")?;
    let max_revision = rows
        .iter()
        .map(|c| c.revision)
        .max()
        .unwrap_or(0)
        .max(watermark);
    let mut skipped = Vec::new();
    let (mut new, mut old, mut heldout) = (Vec::new(), Vec::new(), Vec::new());
    let mut new_corrections = Vec::new();
    for row in &rows {
        let Some(item) = correction_item(row, prompts, watermark) else {
            skipped.push(format!("correction {}: unreadable label", row.request_id));
            continue;
        };
        if item.is_new_correction() {
            new_corrections.push(item.clone());
        }
        if is_held_out(&item.key, r.eval_fraction) {
            heldout.push(item);
        } else if item.is_new_correction() {
            new.push(item);
        } else {
            old.push(item);
        }
    }
    let (mut train, replayed) = with_replay(new, old, r.replay_ratio, r.seed);

    let mut dataset = None;
    let mut dataset_items = 0;
    if let Some(path) = &opts.dataset {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the dataset {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let (items, errors) = parse_dataset(&text, base, prompts);
        report_bad_lines(path, &errors, opts.strict)?;
        skipped.extend(
            errors
                .iter()
                .map(|e| format!("dataset {}: {e}", path.display())),
        );
        dataset_items = items.len();
        for item in items {
            if is_held_out(&item.key, r.eval_fraction) {
                heldout.push(item);
            } else {
                train.push(item);
            }
        }
        dataset = Some((
            path.clone(),
            sha256_file(path).context("hashing the dataset")?,
        ));
    }
    Ok(Plan {
        active,
        watermark,
        max_revision,
        train,
        heldout,
        new_corrections,
        replayed,
        dataset_items,
        dataset,
        skipped,
    })
}

fn report_bad_lines(path: &Path, errors: &[LineError], strict: bool) -> anyhow::Result<()> {
    for e in errors {
        eprintln!(
            "dfa retrain: dataset {}: {e}{}",
            path.display(),
            if strict { "" } else { " (skipped)" }
        );
    }
    if strict && !errors.is_empty() {
        anyhow::bail!(
            "{} bad line(s) in {} and --strict is set (first: {})",
            errors.len(),
            path.display(),
            errors[0]
        );
    }
    Ok(())
}

fn load_image(
    item: &Item,
    images: &ImageStore,
    settings: &Settings,
) -> Result<DecodedImage, String> {
    let bytes = match &item.image {
        ImageRef::Stored(sha) => images.get(sha).map_err(|e| e.to_string())?,
        ImageRef::File(p) => std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?,
    };
    decode_image(&bytes, &settings.image).map_err(|e| format!("image: {e}"))
}

fn describe(item: &Item) -> String {
    match &item.origin {
        Origin::Correction { request_id, .. } => format!("correction {request_id}"),
        Origin::Dataset { line } => format!("dataset line {line}"),
    }
}

/// Tokenized turns with llama.cpp's image embeddings (blocking).
fn featurize(
    settings: &Settings,
    model: &ModelFiles,
    prompts: &Prompts,
    items: &[Item],
    progress: bool,
) -> anyhow::Result<(Vec<Example>, Vec<String>)> {
    let mut f = Featurizer::load(
        &model.gguf,
        &model.mmproj,
        prompts.clone(),
        settings.model.chat_template,
        settings.engine.threads,
    )?;
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
        let emb = Arc::new(f.encode_image(&image)?);
        for (i, turn) in item.turns.iter().enumerate() {
            let history = if item.history_per_turn {
                &item.turns[..i]
            } else {
                &[]
            };
            examples.push(f.example(Some(emb.clone()), history, &turn.question, &turn.answer)?);
        }
    }
    pb.finish_and_clear();
    Ok((examples, skipped))
}

/// Trains the candidate (blocking); continues from the active adapter's
/// weights when asked and when their shapes fit.
fn train_candidate(
    model: &ModelFiles,
    parent: Option<&Path>,
    examples: &[Example],
    config: &TrainConfig,
    progress: bool,
) -> anyhow::Result<(LoraSet, TrainReport, String, bool)> {
    let device = trainer::device();
    let base = BaseModel::load(&model.gguf, &device)?;
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
    let report = trainer::train(&base, &mut lora, examples, config, |_, _, loss| {
        pb.set_prefix(format!("loss {loss:.4}"));
        pb.inc(1);
    })?;
    pb.finish_and_clear();
    Ok((lora, report, base.config.architecture.clone(), continued))
}

/// Scores the engine's current adapter on the evaluation items.
async fn score(
    engine: &Engine,
    images: &[(usize, Arc<DecodedImage>)],
    heldout: &[Item],
    corrected: &[Item],
    threshold: f32,
    progress: bool,
    what: &str,
) -> anyhow::Result<Scores> {
    let pb = bar(progress, images.len(), what);
    let mut predictions = futures::stream::iter(images.iter().cloned())
        .map(|(i, img)| {
            let engine = engine.clone();
            async move {
                let request = crate::engine::AnalysisRequest {
                    image: (*img).clone(),
                    tasks: Tasks {
                        explain: Explain::Never,
                        ..Tasks::screening(1.0)
                    },
                };
                (i, engine.analyze(request).await)
            }
        })
        .buffer_unordered(engine.info().capacity.max(1));
    let mut by_index = vec![None; heldout.len() + corrected.len()];
    while let Some((i, result)) = predictions.next().await {
        pb.inc(1);
        let a = result.context("evaluating")?;
        let p_fake = a.p_fake.unwrap_or(0.0);
        let label = Label::from_score(p_fake, threshold);
        let forgery_type = (label == Label::Fake).then(|| {
            a.type_scores
                .unwrap_or(TypeScores::from_array([0.25; 4]))
                .best()
        });
        by_index[i] = Some(Prediction {
            label,
            forgery_type,
        });
    }
    pb.finish_and_clear();
    let mut scores = Scores::default();
    for (i, p) in by_index.into_iter().enumerate() {
        let Some(p) = p else { continue };
        if i < heldout.len() {
            scores.add_heldout(&heldout[i], p);
        } else {
            scores.add_corrected(&corrected[i - heldout.len()], p);
        }
    }
    Ok(scores)
}

pub async fn retrain(
    settings: &Settings,
    prompts: &Prompts,
    model: &ModelFiles,
    opts: &RetrainOptions,
) -> anyhow::Result<RetrainReport> {
    let train_config = settings.retrain.train_config()?;
    let store = Store::connect(&settings.database.url, 2)
        .await
        .context("connecting to the database")?;
    if settings.database.migrate_on_start {
        store.migrate().await.context("running migrations")?;
    }
    let plan = plan(settings, &store, prompts, opts).await?;
    let adapters_dir = PathBuf::from(&settings.adapters.dir);
    let active_spec = match &plan.active {
        Some(row) => Some(AdapterSpec {
            id: row.id.clone(),
            path: resolve_adapter_path(&adapters_dir, &row.path),
            scale: row.scale,
        }),
        None => adapter_spec(&settings.model.adapter, settings.model.adapter_scale),
    };
    let mut report = RetrainReport {
        outcome: "nothing_to_train",
        message: String::new(),
        active_adapter: active_spec.as_ref().map(|s| s.id.clone()),
        new_corrections: plan.new_corrections.len(),
        replayed_corrections: plan.replayed,
        dataset_items: plan.dataset_items,
        training_items: plan.train.len(),
        heldout_items: plan.heldout.len(),
        skipped: plan.skipped.clone(),
        candidate: None,
        train: None,
        candidate_scores: None,
        active_scores: None,
    };
    let learnable = plan
        .train
        .iter()
        .any(|i| i.is_new_correction() || matches!(i.origin, Origin::Dataset { .. }));
    if !learnable {
        report.message = format!(
            "nothing to train: no new corrections since {} (revision {}){}",
            report.active_adapter.as_deref().unwrap_or("the base model"),
            plan.watermark,
            if opts.dataset.is_some() {
                " and no usable dataset items"
            } else {
                ""
            }
        );
        return Ok(report);
    }
    if opts.dry_run {
        report.outcome = "dry_run";
        report.message = format!(
            "would train a rank-{} LoRA on {:?} for {} epoch(s) over {} item(s) ({} new corrections, {} replayed, {} dataset), evaluate on {} held-out item(s) and {} new correction(s) against {}, and promote it if the gate passes",
            train_config.rank,
            train_config.targets,
            train_config.epochs,
            plan.train.len(),
            plan.train.iter().filter(|i| i.is_new_correction()).count(),
            plan.replayed,
            plan.train.iter().filter(|i| matches!(i.origin, Origin::Dataset { .. })).count(),
            plan.heldout.len(),
            plan.new_corrections.len(),
            report.active_adapter.as_deref().unwrap_or("the base model"),
        );
        return Ok(report);
    }

    // Featurize and train on blocking threads: llama.cpp and candle are sync.
    let (s, m, p, items, show) = (
        settings.clone(),
        model.clone(),
        prompts.clone(),
        plan.train.clone(),
        opts.progress,
    );
    let (examples, skipped) =
        tokio::task::spawn_blocking(move || featurize(&s, &m, &p, &items, show)).await??;
    report.skipped.extend(skipped);
    if examples.is_empty() {
        report.message = "nothing to train: no item had a readable image".into();
        return Ok(report);
    }
    let parent_path = active_spec
        .as_ref()
        .filter(|_| settings.retrain.continue_from_active && plan.active.is_some())
        .map(|s| s.path.clone());
    let (m, cfg) = (model.clone(), train_config.clone());
    let (lora, train_report, architecture, continued) = tokio::task::spawn_blocking(move || {
        train_candidate(&m, parent_path.as_deref(), &examples, &cfg, show)
    })
    .await??;

    let base_sha = sha256_file(&model.gguf).context("hashing the base model")?;
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    let tmp_name = format!("candidate-{stamp}-{}.gguf", uuid::Uuid::new_v4().simple());
    let tmp_path = adapters_dir.join(&tmp_name);
    let provenance = vec![
        ("dfa.base_model_sha256".to_string(), base_sha.clone()),
        (
            "dfa.parent".to_string(),
            report.active_adapter.clone().unwrap_or_default(),
        ),
    ];
    write_adapter(
        &tmp_path,
        &architecture,
        lora.alpha,
        &lora.named_tensors(),
        &provenance,
    )?;
    let sha = sha256_file(&tmp_path).context("hashing the adapter")?;
    let id = format!("lora-{stamp}-{}", &sha[..8]);
    let file_name = format!("{id}.gguf");
    std::fs::rename(&tmp_path, adapters_dir.join(&file_name)).context("naming the adapter file")?;
    let new_ids: Vec<String> = plan
        .new_corrections
        .iter()
        .filter_map(|i| match i.origin {
            Origin::Correction { request_id, .. } => Some(request_id.to_string()),
            _ => None,
        })
        .collect();
    store
        .insert_adapter(&NewAdapter {
            id: id.clone(),
            path: file_name,
            sha256: sha,
            base_model_sha256: base_sha,
            parent_id: plan.active.as_ref().map(|a| a.id.clone()),
            scale: 1.0,
            origin: "retrain",
            training_data: json!({
                "max_revision": plan.max_revision,
                "since_revision": plan.watermark,
                "new_corrections": new_ids,
                "replayed_corrections": plan.replayed,
                "dataset": plan.dataset.as_ref().map(|(p, sha)| json!({"path": p, "sha256": sha, "items": plan.dataset_items})),
                "training_items": plan.train.len(),
                "heldout_items": plan.heldout.len(),
                "skipped": report.skipped.len(),
            }),
            hyper_parameters: json!({
                "config": train_config,
                "continued_from_parent": continued,
                "epoch_losses": train_report.epoch_losses,
            }),
        })
        .await
        .context("registering the candidate")?;
    report.candidate = Some(id.clone());
    report.train = Some(train_report);

    // Evaluate the candidate and the active adapter with the serving engine.
    let images = ImageStore::new(&settings.image_store.dir);
    let mut eval_images = Vec::new();
    let heldout: Vec<Item> = plan
        .heldout
        .iter()
        .filter(|i| i.label.is_some())
        .cloned()
        .collect();
    for (i, item) in heldout.iter().chain(&plan.new_corrections).enumerate() {
        match load_image(item, &images, settings) {
            Ok(img) => eval_images.push((i, Arc::new(img))),
            Err(e) => report
                .skipped
                .push(format!("evaluation {}: {e} (skipped)", describe(item))),
        }
    }
    let config = EngineConfig::from_settings(
        settings,
        model.gguf.clone(),
        model.mmproj.clone(),
        active_spec.clone(),
        prompts.clone(),
    );
    let engine = Engine::start(config)
        .await
        .context("starting the engine for evaluation")?;
    let threshold = settings.analysis.threshold;
    let active_scores = score(
        &engine,
        &eval_images,
        &heldout,
        &plan.new_corrections,
        threshold,
        opts.progress,
        "scoring active",
    )
    .await?;
    let candidate_spec = AdapterSpec {
        id: id.clone(),
        path: adapters_dir.join(format!("{id}.gguf")),
        scale: 1.0,
    };
    engine
        .swap_adapter(Some(candidate_spec))
        .await
        .context("loading the candidate")?;
    let candidate_scores = score(
        &engine,
        &eval_images,
        &heldout,
        &plan.new_corrections,
        threshold,
        opts.progress,
        "scoring candidate",
    )
    .await?;

    let gate = Gate {
        max_heldout_drop: settings.retrain.max_heldout_drop,
        min_corrected_gain: settings.retrain.min_corrected_gain,
    };
    let decision = decide(&candidate_scores, &active_scores, gate);
    let metrics = json!({
        "candidate": candidate_scores,
        "active": active_scores,
        "compared_with": report.active_adapter,
        "decision": match &decision { Decision::Promote(r) => json!({"promote": r}), Decision::Reject(r) => json!({"reject": r}) },
    });
    store
        .set_adapter_metrics(&id, &metrics)
        .await
        .context("recording the evaluation")?;
    match decision {
        Decision::Promote(reason) => {
            store
                .promote_adapter(&id, &reason)
                .await
                .context("promoting the candidate")?;
            report.outcome = "promoted";
            report.message = format!("{id} promoted: {reason}");
        }
        Decision::Reject(reason) => {
            store
                .reject_adapter(&id, &reason)
                .await
                .context("rejecting the candidate")?;
            report.outcome = "rejected";
            report.message = format!("{id} rejected: {reason}");
        }
    }
    report.candidate_scores = Some(candidate_scores);
    report.active_scores = Some(active_scores);
    Ok(report)
}
