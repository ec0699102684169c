//! `dfa retrain`: corrections since the active adapter (+ a replay sample of
//! earlier ones, + an optional LLaVA dataset) → a candidate LoRA, evaluated
//! against the active adapter on the held-out split and the new corrections,
//! then promoted or rejected. Runs to completion; safe to run from cron.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;
use serde_json::json;

use super::evaluate::{decide, Decision, Gate, Scores};
use super::items::{Item, Origin};
use super::plan::{describe, load_image, plan};
use super::steps::{featurize, score, train_candidate};
use crate::engine::{sha256_file, AdapterSpec, Engine, EngineConfig};
use crate::image_store::ImageStore;
use crate::model_files::{adapter_spec, ModelFiles};
use crate::prompts::Prompts;
use crate::settings::Settings;
use crate::store::{NewAdapter, Store};
use crate::trainer::lora::write_adapter;
use crate::trainer::TrainReport;
use crate::worker::adapters::registry_spec;

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
        Some(row) => Some(registry_spec(&row.into(), &adapters_dir)),
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

    // The serving engine scores both adapters; it also hashes the base model,
    // which the registry records (hashing a 7B GGUF twice costs tens of seconds).
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
    let base_sha = engine.info().model.base_sha256.clone();
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
    let heldout: Vec<Item> = plan
        .heldout
        .iter()
        .filter(|i| i.label.is_some())
        .cloned()
        .collect();
    let (s, items) = (
        settings.clone(),
        heldout
            .iter()
            .chain(&plan.new_corrections)
            .cloned()
            .collect::<Vec<_>>(),
    );
    let (eval_images, unreadable) = tokio::task::spawn_blocking(move || {
        let images = ImageStore::new(&s.image_store.dir);
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        for (i, item) in items.iter().enumerate() {
            match load_image(item, &images, &s) {
                Ok(img) => ok.push((i, Arc::new(img))),
                Err(e) => bad.push(format!("evaluation {}: {e} (skipped)", describe(item))),
            }
        }
        (ok, bad)
    })
    .await?;
    report.skipped.extend(unreadable);
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
