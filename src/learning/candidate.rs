//! Puts a trained candidate into the adapter store and the registry: the GGUF
//! file, named by its content, with provenance keys, and a `candidate` row
//! recording what it learned from.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::plan::Plan;
use super::record::HyperParameters;
use super::steps::Trained;
use crate::domain::adapter::AdapterOrigin;
use crate::domain::lora::TrainConfig;
use crate::engine::AdapterSpec;
use crate::registry::{register, AdapterId, Registration};
use crate::store::Store;
use crate::trainer::adapter_file::write_adapter;

/// A registered candidate, ready to be evaluated.
pub(super) struct Candidate {
    pub id: String,
    pub spec: AdapterSpec,
}

/// Where the candidate comes from: the base model and the adapter it may
/// replace.
pub(super) struct Lineage<'a> {
    pub base_model_sha256: &'a str,
    /// The adapter the candidate is compared with (from the registry or
    /// `model.adapter`); recorded in the file.
    pub compared_with: Option<&'a str>,
    /// The registry's active adapter, the candidate's parent row.
    pub parent_id: Option<&'a str>,
    /// The mmproj training started from, and the configured one.
    pub start_mmproj: &'a Path,
    pub configured_mmproj: &'a Path,
}

/// The mmproj registered with the candidate.
pub(super) enum CandidateProjector {
    /// The configured `model.mmproj`: nothing to register.
    Configured,
    /// Trained with the LoRA: `original` with these mm.* tensors.
    Trained {
        original: PathBuf,
        tensors: Vec<(String, candle_core::Tensor)>,
    },
    /// The active pair's projector, frozen this time: kept with the
    /// candidate, which was trained on what it produces.
    CarriedOver(PathBuf),
}

impl CandidateProjector {
    pub fn of(trained: &Trained, start: &Path, configured: &Path) -> CandidateProjector {
        match &trained.projector {
            Some((p, original)) => match p.named_tensors() {
                Ok(tensors) => CandidateProjector::Trained {
                    original: original.clone(),
                    tensors,
                },
                // Copying tensors off the device failed: keep the frozen
                // starting projector rather than lose the LoRA.
                Err(e) => {
                    tracing::warn!(error = %e, "the trained projector could not be read back; keeping the one training started from");
                    CandidateProjector::CarriedOver(original.clone())
                }
            },
            None if start != configured => CandidateProjector::CarriedOver(start.to_path_buf()),
            None => CandidateProjector::Configured,
        }
    }
}

/// Writes the candidate's mmproj into the adapter store beside the staged
/// LoRA (blocking work off the async threads); None: none to register.
async fn stage_projector(
    adapters_dir: &Path,
    staged_lora: &Path,
    projector: CandidateProjector,
) -> anyhow::Result<Option<PathBuf>> {
    let out = adapters_dir.join(format!(
        "{}.mmproj",
        staged_lora
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let target = out.clone();
    match projector {
        CandidateProjector::Configured => return Ok(None),
        CandidateProjector::Trained { original, tensors } => {
            tokio::task::spawn_blocking(move || {
                crate::trainer::mmproj::write_replacing(&original, &target, &tensors)
            })
            .await?
            .context("writing the trained projector")?;
        }
        CandidateProjector::CarriedOver(from) => {
            tokio::task::spawn_blocking(move || {
                crate::atomic::write_with(&target, |file: &mut std::fs::File| {
                    std::io::copy(&mut std::fs::File::open(&from)?, file).map(|_| ())
                })
            })
            .await?
            .context("copying the active adapter's projector")?;
        }
    }
    Ok(Some(out))
}

/// Writes and registers the candidate, named `lora-<time>-<sha8>`.
/// `skipped` counts the items left out before training.
pub(super) async fn register_candidate(
    store: &Store,
    adapters_dir: &Path,
    plan: &Plan,
    trained: &Trained,
    config: &TrainConfig,
    lineage: Lineage<'_>,
    skipped: usize,
) -> anyhow::Result<Candidate> {
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S").to_string();
    let provenance = vec![
        (
            "dfa.base_model_sha256".to_string(),
            lineage.base_model_sha256.to_string(),
        ),
        (
            "dfa.parent".to_string(),
            lineage.compared_with.unwrap_or_default().to_string(),
        ),
    ];
    let staged = adapters_dir.join(format!(
        "candidate-{stamp}-{}.gguf",
        uuid::Uuid::new_v4().simple()
    ));
    let (file, architecture, alpha, tensors) = (
        staged.clone(),
        trained.architecture.clone(),
        trained.lora.alpha,
        trained.lora.named_tensors(),
    );
    // Writing is blocking (and copies tensors off the GPU).
    tokio::task::spawn_blocking(move || {
        write_adapter(&file, &architecture, alpha, &tensors, &provenance)
    })
    .await??;
    let projector =
        CandidateProjector::of(trained, lineage.start_mmproj, lineage.configured_mmproj);
    let staged_mmproj = match stage_projector(adapters_dir, &staged, projector).await {
        Ok(p) => p,
        Err(e) => {
            let _ = tokio::fs::remove_file(&staged).await;
            return Err(e);
        }
    };
    let row = Registration {
        base_model_sha256: lineage.base_model_sha256.to_string(),
        parent_id: lineage.parent_id.map(str::to_string),
        origin: AdapterOrigin::Retrain,
        training_data: plan.training_data(skipped).to_json()?,
        hyper_parameters: HyperParameters {
            config,
            continued_from_parent: trained.continued,
            epoch_losses: &trained.report.epoch_losses,
        }
        .to_json()?,
        projector: staged_mmproj,
    };
    let id = AdapterId::ByContent {
        prefix: format!("lora-{stamp}"),
    };
    let spec = register(store, adapters_dir, staged, id, row).await?;
    Ok(Candidate {
        id: spec.id.clone(),
        spec,
    })
}
