//! The gate, run: the serving engine scores the active adapter and the
//! candidate on the same evaluation items, and the registry records the
//! scores and the decision (promoted or rejected).

use std::sync::Arc;

use anyhow::Context;

use super::candidate::Candidate;
use super::evaluate::{decide, Decision, Gate, Scores};
use super::items::Item;
use super::plan::{describe, load_image, Plan};
use super::record::Metrics;
use super::steps::score;
use crate::engine::Engine;
use crate::images::ImageStore;
use crate::intake::DecodedImage;
use crate::metrics::report::Report;
use crate::settings::Settings;
use crate::store::Store;

/// What both adapters are scored on: the labelled held-out items, then the
/// new corrections; `images` index into that order.
pub(super) struct EvalSet {
    pub heldout: Vec<Item>,
    pub corrected: Vec<Item>,
    pub images: Vec<(usize, Arc<DecodedImage>)>,
    /// Items whose image could not be read, as report lines.
    pub unreadable: Vec<String>,
}

/// Decodes the evaluation images (blocking, off the async threads).
pub(super) async fn load_eval_set(settings: &Settings, plan: &Plan) -> anyhow::Result<EvalSet> {
    let heldout: Vec<Item> = plan
        .heldout
        .iter()
        .filter(|i| i.label.is_some())
        .cloned()
        .collect();
    let corrected = plan.new_corrections.clone();
    let (s, items) = (
        settings.clone(),
        heldout
            .iter()
            .chain(&corrected)
            .cloned()
            .collect::<Vec<_>>(),
    );
    let (images, unreadable) = tokio::task::spawn_blocking(move || {
        let store = ImageStore::new(&s.image_store.dir);
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        for (i, item) in items.iter().enumerate() {
            match load_image(item, &store, &s) {
                Ok(img) => ok.push((i, Arc::new(img))),
                Err(e) => bad.push(format!("evaluation {}: {e} (skipped)", describe(item))),
            }
        }
        (ok, bad)
    })
    .await?;
    Ok(EvalSet {
        heldout,
        corrected,
        images,
        unreadable,
    })
}

/// Both adapters' scores and held-out reports on one evaluation set.
pub(super) struct Evaluation {
    pub active: Scores,
    pub candidate: Scores,
    pub active_report: Report,
    pub candidate_report: Report,
}

/// Scores the engine's current (active) adapter, then swaps in the candidate
/// and scores it.
pub(super) async fn evaluate(
    engine: &Engine,
    set: &EvalSet,
    candidate: &Candidate,
    threshold: f32,
    progress: bool,
) -> anyhow::Result<Evaluation> {
    let run = |what: &'static str| {
        score(
            engine,
            &set.images,
            &set.heldout,
            &set.corrected,
            threshold,
            progress,
            what,
        )
    };
    let active = run("scoring active").await?;
    engine
        .swap_adapter(Some(candidate.spec.clone()))
        .await
        .context("loading the candidate")?;
    let candidate = run("scoring candidate").await?;
    Ok(Evaluation {
        active: active.scores,
        candidate: candidate.scores,
        active_report: active.report,
        candidate_report: candidate.report,
    })
}

/// Applies the gate and records the outcome in the registry.
pub(super) async fn judge(
    store: &Store,
    candidate_id: &str,
    evaluation: &Evaluation,
    gate: Gate,
    compared_with: Option<&str>,
) -> anyhow::Result<Decision> {
    let decision = decide(&evaluation.candidate, &evaluation.active, gate);
    let metrics = Metrics {
        candidate: &evaluation.candidate,
        active: &evaluation.active,
        compared_with,
        decision: &decision,
        report: Some(&evaluation.candidate_report),
        active_report: Some(&evaluation.active_report),
    };
    store
        .set_adapter_metrics(candidate_id, &metrics.to_json()?)
        .await
        .context("recording the evaluation")?;
    match &decision {
        Decision::Promote(reason) => store
            .promote_adapter(candidate_id, reason)
            .await
            .context("promoting the candidate")?,
        Decision::Reject(reason) => store
            .reject_adapter(candidate_id, reason)
            .await
            .context("rejecting the candidate")?,
    }
    Ok(decision)
}
