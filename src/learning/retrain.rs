//! `dfa retrain`: corrections since the active adapter (+ a replay sample of
//! earlier ones, + an optional LLaVA dataset) → a candidate LoRA, evaluated
//! against the active adapter on the held-out split and the new corrections,
//! then promoted or rejected. Runs to completion; safe to run from cron.
//!
//! The phases, each with its own typed result: plan → featurize → train →
//! register → evaluate → judge.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::candidate::{register_candidate, Candidate, Lineage};
use super::compare::{evaluate, judge, load_eval_set};
use super::evaluate::{Decision, Gate, Scores};
use super::plan::{plan, Plan};
use super::steps::{featurize, train_candidate, Featurized, Start, Trained};
use super::RetrainOptions;
use crate::domain::lora::TrainConfig;
use crate::domain::prompts::Prompts;
use crate::engine::{AdapterSpec, Engine, EngineConfig};
use crate::metrics::report::Report;
use crate::model::files::{adapter_spec, ModelFiles};
use crate::registry::registry_spec;
use crate::settings::Settings;
use crate::store::Store;
use crate::trainer::TrainReport;

/// How a run ended; serialised as `nothing_to_train`, `dry_run`, `promoted`
/// or `rejected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    NothingToTrain,
    DryRun,
    Promoted,
    Rejected,
}

/// What the job did, printed as JSON.
#[derive(Debug, Clone, Serialize)]
pub struct RetrainReport {
    pub outcome: Outcome,
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
    /// DFA-Bench's report of each on the held-out split (docs/eval.md).
    pub candidate_report: Option<Report>,
    pub active_report: Option<Report>,
}

impl RetrainReport {
    fn planned(plan: &Plan, active: Option<&AdapterSpec>) -> RetrainReport {
        RetrainReport {
            outcome: Outcome::NothingToTrain,
            message: String::new(),
            active_adapter: active.map(|s| s.id.clone()),
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
            candidate_report: None,
            active_report: None,
        }
    }

    fn finish(mut self, outcome: Outcome, message: String) -> RetrainReport {
        self.outcome = outcome;
        self.message = message;
        self
    }

    fn compared_with(&self) -> &str {
        self.active_adapter.as_deref().unwrap_or("the base model")
    }
}

pub async fn retrain(
    settings: &Settings,
    prompts: &Prompts,
    model: &ModelFiles,
    opts: &RetrainOptions,
) -> anyhow::Result<RetrainReport> {
    let mut config = settings.retrain.train.clone();
    config.train_projector = settings
        .retrain
        .train_projector
        .resolve(opts.dataset.is_some());
    let config = &config;
    let store = Store::open(&settings.database, 2)
        .await
        .context("opening the database")?;
    let plan = plan(settings, &store, prompts, opts).await?;
    let adapters_dir = PathBuf::from(&settings.adapters.dir);
    let active = active_spec(settings, &plan, &adapters_dir);
    let mut report = RetrainReport::planned(&plan, active.as_ref());
    if !plan.learnable() {
        let message = nothing_new(&plan, &report, opts);
        return Ok(report.finish(Outcome::NothingToTrain, message));
    }
    if opts.dry_run {
        let message = would_train(&plan, &report, config);
        return Ok(report.finish(Outcome::DryRun, message));
    }

    let continuing = settings.retrain.continue_from_active && plan.active.is_some();
    // The projector training starts from (and, frozen, serves with): the
    // active pair's own when continuing from it, else the configured one.
    let start_mmproj = active
        .as_ref()
        .filter(|_| continuing)
        .and_then(|s| s.mmproj.clone())
        .unwrap_or_else(|| model.mmproj.clone());
    let Featurized { examples, skipped } = featurize_blocking(
        settings,
        model,
        prompts,
        &plan,
        &start_mmproj,
        config.train_projector,
        opts.progress,
    )
    .await?;
    report.skipped.extend(skipped);
    if examples.is_empty() {
        let message = "nothing to train: no item had a readable image".to_string();
        return Ok(report.finish(Outcome::NothingToTrain, message));
    }
    let parent = active
        .as_ref()
        .filter(|_| continuing)
        .map(|s| s.path.clone());
    let trained = train_blocking(
        model,
        parent,
        start_mmproj.clone(),
        examples,
        config,
        opts.progress,
    )
    .await?;

    // The serving engine scores both adapters; it also hashes the base model,
    // which the registry records (hashing a 7B GGUF twice costs tens of seconds).
    let engine = start_engine(settings, model, prompts, active).await?;
    let base_model_sha256 = engine.info().model.base_sha256.clone();
    let lineage = Lineage {
        base_model_sha256: &base_model_sha256,
        compared_with: report.active_adapter.as_deref(),
        parent_id: plan.active.as_ref().map(|a| a.id.as_str()),
        start_mmproj: &start_mmproj,
        configured_mmproj: &model.mmproj,
    };
    let candidate = register_candidate(
        &store,
        &adapters_dir,
        &plan,
        &trained,
        config,
        lineage,
        report.skipped.len(),
    )
    .await?;
    report.candidate = Some(candidate.id.clone());
    report.train = Some(trained.report);

    let set = load_eval_set(settings, &plan).await?;
    report.skipped.extend(set.unreadable.iter().cloned());
    let threshold = settings.analysis.threshold;
    let evaluation = evaluate(&engine, &set, &candidate, threshold, opts.progress).await?;
    let gate = Gate {
        max_heldout_drop: settings.retrain.max_heldout_drop,
        min_corrected_gain: settings.retrain.min_corrected_gain,
    };
    let decision = judge(
        &store,
        &candidate.id,
        &evaluation,
        gate,
        report.active_adapter.as_deref(),
    )
    .await?;
    let (outcome, message) = conclusion(&candidate, decision);
    report.candidate_scores = Some(evaluation.candidate);
    report.active_scores = Some(evaluation.active);
    report.candidate_report = Some(evaluation.candidate_report);
    report.active_report = Some(evaluation.active_report);
    Ok(report.finish(outcome, message))
}

/// The adapter the candidate must beat: the registry's active one, else
/// `model.adapter`, else none (the base model).
fn active_spec(settings: &Settings, plan: &Plan, adapters_dir: &Path) -> Option<AdapterSpec> {
    match &plan.active {
        Some(row) => Some(registry_spec(&row.into(), adapters_dir)),
        None => adapter_spec(&settings.model.adapter, settings.model.adapter_scale),
    }
}

fn nothing_new(plan: &Plan, report: &RetrainReport, opts: &RetrainOptions) -> String {
    format!(
        "nothing to train: no new corrections since {} (revision {}){}",
        report.compared_with(),
        plan.watermark,
        if opts.dataset.is_some() {
            " and no usable dataset items"
        } else {
            ""
        }
    )
}

fn would_train(plan: &Plan, report: &RetrainReport, config: &TrainConfig) -> String {
    format!(
        "would train a rank-{} LoRA on {:?} for {} epoch(s) over {} item(s) ({} new corrections, {} replayed, {} dataset), evaluate on {} held-out item(s) and {} new correction(s) against {}, and promote it if the gate passes",
        config.rank,
        config.targets,
        config.epochs,
        plan.train.len(),
        plan.new_in_training(),
        plan.replayed,
        plan.dataset_in_training(),
        plan.heldout.len(),
        plan.new_corrections.len(),
        report.compared_with(),
    )
}

/// Featurizes on a blocking thread: llama.cpp is synchronous.
async fn featurize_blocking(
    settings: &Settings,
    model: &ModelFiles,
    prompts: &Prompts,
    plan: &Plan,
    mmproj: &Path,
    tower: bool,
    progress: bool,
) -> anyhow::Result<Featurized> {
    let (s, m, p, items, mmproj) = (
        settings.clone(),
        model.clone(),
        prompts.clone(),
        plan.train.clone(),
        mmproj.to_path_buf(),
    );
    tokio::task::spawn_blocking(move || featurize(&s, &m, &p, &items, &mmproj, tower, progress))
        .await?
}

/// Trains on a blocking thread: candle is synchronous.
async fn train_blocking(
    model: &ModelFiles,
    parent: Option<PathBuf>,
    mmproj: PathBuf,
    examples: Vec<crate::trainer::Example>,
    config: &TrainConfig,
    progress: bool,
) -> anyhow::Result<Trained> {
    let (m, cfg) = (model.clone(), config.clone());
    tokio::task::spawn_blocking(move || {
        let start = Start {
            parent: parent.as_deref(),
            mmproj: &mmproj,
        };
        train_candidate(&m, start, &examples, &cfg, progress)
    })
    .await?
}

async fn start_engine(
    settings: &Settings,
    model: &ModelFiles,
    prompts: &Prompts,
    active: Option<AdapterSpec>,
) -> anyhow::Result<Engine> {
    let config = EngineConfig::from_settings(
        settings,
        model.gguf.clone(),
        model.mmproj.clone(),
        active,
        prompts.clone(),
    );
    Engine::start(config)
        .await
        .context("starting the engine for evaluation")
}

fn conclusion(candidate: &Candidate, decision: Decision) -> (Outcome, String) {
    let id = &candidate.id;
    match decision {
        Decision::Promote(reason) => (Outcome::Promoted, format!("{id} promoted: {reason}")),
        Decision::Reject(reason) => (Outcome::Rejected, format!("{id} rejected: {reason}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_serialise_to_their_report_names() {
        let names: Vec<_> = [
            Outcome::NothingToTrain,
            Outcome::DryRun,
            Outcome::Promoted,
            Outcome::Rejected,
        ]
        .iter()
        .map(|o| serde_json::to_value(o).unwrap())
        .collect();
        assert_eq!(
            names,
            ["nothing_to_train", "dry_run", "promoted", "rejected"]
        );
    }
}
