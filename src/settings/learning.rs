//! Settings of the learning loop: where images and adapters are kept, how
//! workers follow the registry, and how `dfa retrain` trains and gates.

use serde::Deserialize;

use super::{invalid, unit_interval, SettingsError};
use crate::trainer::lora::Projection;
use crate::trainer::TrainConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageStoreSettings {
    /// Images of analysed requests, by sha256; training reads corrected ones.
    pub dir: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterSettings {
    /// The adapter store: trained and imported GGUF adapters.
    pub dir: String,
    /// Workers serve the registry's active adapter (over `model.adapter`).
    pub follow_registry: bool,
    /// How often workers check the registry for a promotion or rollback.
    pub poll_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrainSettings {
    pub targets: Vec<String>,
    pub rank: usize,
    pub alpha: f32,
    pub dropout: f32,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// Earlier corrections replayed per new one, so old knowledge stays.
    pub replay_ratio: f64,
    /// Share of items held out for evaluation (by a hash of their id, so an
    /// item is held out in every run and never trained on).
    pub eval_fraction: f64,
    /// Gate: held-out detection/classification accuracy may fall at most this
    /// much below the active adapter's.
    pub max_heldout_drop: f64,
    /// Gate: accuracy on the new corrections must beat the active adapter's
    /// by at least this much.
    pub min_corrected_gain: f64,
    /// Start from the active adapter's weights when its shape fits.
    pub continue_from_active: bool,
}

impl RetrainSettings {
    pub fn projections(&self) -> Result<Vec<Projection>, SettingsError> {
        self.targets
            .iter()
            .map(|t| {
                Projection::parse(t).ok_or_else(|| {
                    invalid(
                        "retrain.targets",
                        format!("unknown projection `{t}` (attn_q, attn_k, attn_v, attn_output)"),
                    )
                })
            })
            .collect()
    }

    pub fn train_config(&self) -> Result<TrainConfig, SettingsError> {
        Ok(TrainConfig {
            targets: self.projections()?,
            rank: self.rank,
            alpha: self.alpha,
            dropout: self.dropout,
            learning_rate: self.learning_rate,
            weight_decay: self.weight_decay,
            epochs: self.epochs,
            batch_size: self.batch_size,
            seed: self.seed,
        })
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.projections()?.is_empty() {
            return Err(invalid("retrain.targets", "name at least one projection"));
        }
        if self.rank == 0 || self.rank > 1024 {
            return Err(invalid("retrain.rank", "must be within 1..=1024"));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(invalid("retrain.alpha", "must be positive"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(invalid("retrain.dropout", "must be within 0..1"));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(invalid("retrain.learning_rate", "must be positive"));
        }
        if self.epochs == 0 || self.batch_size == 0 {
            return Err(invalid(
                "retrain.epochs",
                "epochs and batch_size must be at least 1",
            ));
        }
        if !(self.replay_ratio.is_finite() && self.replay_ratio >= 0.0) {
            return Err(invalid("retrain.replay_ratio", "must be 0 or more"));
        }
        unit_interval("retrain.eval_fraction", self.eval_fraction as f32)?;
        unit_interval("retrain.max_heldout_drop", self.max_heldout_drop as f32)?;
        if !(-1.0..=1.0).contains(&self.min_corrected_gain) {
            return Err(invalid(
                "retrain.min_corrected_gain",
                "must be within -1..=1",
            ));
        }
        Ok(())
    }
}
