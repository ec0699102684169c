//! Settings of the learning loop: where images and adapters are kept, how
//! workers follow the registry, and how `dfa retrain` trains and gates.

use std::fmt;

use serde::de::{Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::validate::unit_interval;
use super::{invalid, SettingsError};
use crate::domain::lora::TrainConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageStoreSettings {
    /// Images of analysed requests, by sha256; training reads corrected ones.
    pub dir: String,
    /// Images older than this many days are deleted, except those of
    /// corrected verdicts (training data); 0 keeps everything.
    pub retain_days: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterSettings {
    /// The adapter store: trained and imported GGUF adapters.
    pub dir: String,
    /// Workers serve the registry's active adapter (over `model.adapter`).
    pub follow_registry: bool,
    /// How often workers check the registry for a promotion or rollback.
    #[serde(with = "humantime_serde")]
    pub poll_interval: std::time::Duration,
}

/// `[retrain]`: the hyper-parameters (`TrainConfig`'s fields, under the same
/// key names) and the loop's own settings, side by side in one table.
#[derive(Debug, Clone, Deserialize)]
pub struct RetrainSettings {
    /// `targets`, `rank`, `alpha`, `dropout`, `learning_rate`,
    /// `weight_decay`, `epochs`, `batch_size`, `seed`.
    #[serde(flatten)]
    pub train: TrainConfig,
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
    /// Train the mmproj's projector with the LoRA (DFA-GPT's recipe).
    #[serde(default)]
    pub train_projector: TrainProjector,
    // serde's `flatten` cannot be combined with `deny_unknown_fields`: this
    // last flattened field receives the keys nobody took, and refuses them.
    #[serde(flatten)]
    _no_other_keys: NoOtherKeys,
}

/// `retrain.train_projector`: `true`, `false`, or `"auto"` (the default):
/// on when training from a dataset (`dfa retrain --dataset`), where there is
/// enough data to move the projector; off for corrections alone, a few items
/// that should adjust the LoRA, not what the model sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrainProjector {
    #[default]
    Auto,
    On,
    Off,
}

impl TrainProjector {
    pub fn resolve(self, with_dataset: bool) -> bool {
        match self {
            TrainProjector::Auto => with_dataset,
            TrainProjector::On => true,
            TrainProjector::Off => false,
        }
    }
}

impl<'de> Deserialize<'de> for TrainProjector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TrainProjector, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Flag(bool),
            Word(String),
        }
        match Wire::deserialize(d)? {
            Wire::Flag(true) => Ok(TrainProjector::On),
            Wire::Flag(false) => Ok(TrainProjector::Off),
            Wire::Word(w) => match w.trim().to_ascii_lowercase().as_str() {
                "auto" => Ok(TrainProjector::Auto),
                "true" => Ok(TrainProjector::On),
                "false" => Ok(TrainProjector::Off),
                other => Err(D::Error::custom(format_args!(
                    "retrain.train_projector: `{other}` is not true, false or \"auto\""
                ))),
            },
        }
    }
}

/// Deserialises only from an empty map.
#[derive(Debug, Clone, Copy)]
struct NoOtherKeys;

impl<'de> Deserialize<'de> for NoOtherKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NoOtherKeys, D::Error> {
        struct Refuse;
        impl<'de> Visitor<'de> for Refuse {
            type Value = NoOtherKeys;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("no further keys")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoOtherKeys, A::Error> {
                match map.next_key::<String>()? {
                    Some(key) => Err(A::Error::custom(format_args!(
                        "unknown field `{key}` in [retrain]"
                    ))),
                    None => Ok(NoOtherKeys),
                }
            }
        }
        d.deserialize_map(Refuse)
    }
}

impl RetrainSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        let t = &self.train;
        if t.targets.is_empty() {
            return Err(invalid("retrain.targets", "name at least one projection"));
        }
        if t.rank == 0 || t.rank > 1024 {
            return Err(invalid("retrain.rank", "must be within 1..=1024"));
        }
        if !(t.alpha.is_finite() && t.alpha > 0.0) {
            return Err(invalid("retrain.alpha", "must be positive"));
        }
        if !(0.0..1.0).contains(&t.dropout) {
            return Err(invalid("retrain.dropout", "must be within 0..1"));
        }
        if !(t.learning_rate.is_finite() && t.learning_rate > 0.0) {
            return Err(invalid("retrain.learning_rate", "must be positive"));
        }
        if t.epochs == 0 {
            return Err(invalid("retrain.epochs", "must be at least 1"));
        }
        if t.batch_size == 0 {
            return Err(invalid("retrain.batch_size", "must be at least 1"));
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

#[cfg(test)]
mod tests {
    use config::{Config, File, FileFormat};

    use super::*;
    use crate::domain::lora::Projection;

    /// `[retrain]` as the settings loader reads it: the embedded defaults
    /// under `overrides`.
    fn retrain(overrides: &str) -> Result<RetrainSettings, config::ConfigError> {
        #[derive(Deserialize)]
        struct Only {
            retrain: RetrainSettings,
        }
        let only: Only = Config::builder()
            .add_source(File::from_str(super::super::DEFAULT_TOML, FileFormat::Toml))
            .add_source(File::from_str(overrides, FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        Ok(only.retrain)
    }

    #[test]
    fn the_hyper_parameters_are_read_by_their_key_names() {
        let r = retrain("[retrain]\nrank = 4\nalpha = 8\ntargets = [\"q_proj\", \"attn_v\"]\n")
            .unwrap();
        assert_eq!(r.train.rank, 4);
        assert_eq!(r.train.alpha, 8.0);
        assert_eq!(r.train.targets, [Projection::Q, Projection::V]);
        assert_eq!(r.train.epochs, 4);
        assert_eq!(r.replay_ratio, 1.0);
        assert!(r.continue_from_active);
        r.validate().unwrap();
    }

    #[test]
    fn environment_variables_keep_their_names() {
        let env: config::Map<String, String> = [
            ("DFA__RETRAIN__RANK", "4"),
            ("DFA__RETRAIN__ALPHA", "8"),
            ("DFA__RETRAIN__DROPOUT", "0"),
            ("DFA__RETRAIN__LEARNING_RATE", "0.005"),
            ("DFA__RETRAIN__REPLAY_RATIO", "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        #[derive(Deserialize)]
        struct Only {
            retrain: RetrainSettings,
        }
        let only: Only = Config::builder()
            .add_source(File::from_str(super::super::DEFAULT_TOML, FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("DFA")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(env)),
            )
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        let r = only.retrain;
        assert_eq!(
            (r.train.rank, r.train.alpha, r.train.dropout),
            (4, 8.0, 0.0)
        );
        assert_eq!(r.train.learning_rate, 0.005);
        assert_eq!(r.replay_ratio, 0.0);
    }

    #[test]
    fn projector_training_is_auto_true_or_false() {
        let auto = retrain("").unwrap().train_projector;
        assert_eq!(auto, TrainProjector::Auto);
        assert!(auto.resolve(true) && !auto.resolve(false));
        let on = retrain("[retrain]\ntrain_projector = true\n").unwrap();
        assert_eq!(on.train_projector, TrainProjector::On);
        assert!(!on.train.train_projector, "the setting is resolved per run");
        assert_eq!(
            retrain("[retrain]\ntrain_projector = \"false\"\n")
                .unwrap()
                .train_projector,
            TrainProjector::Off
        );
        let err = retrain("[retrain]\ntrain_projector = \"sometimes\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sometimes"), "{err}");
    }

    #[test]
    fn unknown_keys_and_projections_are_refused_by_name() {
        let err = retrain("[retrain]\nrnak = 4\n").unwrap_err().to_string();
        assert!(err.contains("rnak"), "{err}");
        let err = retrain("[retrain]\ntargets = [\"attn_x\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown projection `attn_x`"), "{err}");
    }

    #[test]
    fn impossible_values_name_their_key() {
        for (toml, key) in [
            ("targets = []", "retrain.targets"),
            ("rank = 0", "retrain.rank"),
            ("alpha = 0", "retrain.alpha"),
            ("dropout = 1", "retrain.dropout"),
            ("batch_size = 0", "retrain.batch_size"),
            ("eval_fraction = 2", "retrain.eval_fraction"),
            ("min_corrected_gain = 2", "retrain.min_corrected_gain"),
        ] {
            let r = retrain(&format!("[retrain]\n{toml}\n")).unwrap();
            match r.validate() {
                Err(SettingsError::Invalid { key: k, .. }) => assert_eq!(k, key, "{toml}"),
                other => panic!("{toml}: {other:?}"),
            }
        }
    }
}
