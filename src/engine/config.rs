//! What the engine thread needs to load and run a model: the model files, the
//! prompts, and the `engine` settings section as it is.

use std::path::PathBuf;

use super::EngineError;
use crate::domain::prompts::Prompts;
use crate::settings::{ChatTemplateChoice, EngineSettings, Settings};

pub use crate::domain::adapter::AdapterSpec;

/// Sequence ids one request may use at once: its main conversation plus the
/// branches that score the classification candidates side by side.
pub const SEQS_PER_REQUEST: u32 = 8;

/// Everything the engine thread needs to load and run a model.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub gguf: PathBuf,
    pub mmproj: PathBuf,
    pub adapter: Option<AdapterSpec>,
    pub chat_template: ChatTemplateChoice,
    pub prompts: Prompts,
    pub engine: EngineSettings,
    /// `analysis.max_explain_tokens`
    pub max_explain_tokens: u32,
    /// `analysis.max_answer_tokens`
    pub max_answer_tokens: u32,
}

impl EngineConfig {
    /// The engine part of `settings`, for the given model files.
    pub fn from_settings(
        settings: &Settings,
        gguf: PathBuf,
        mmproj: PathBuf,
        adapter: Option<AdapterSpec>,
        prompts: Prompts,
    ) -> EngineConfig {
        EngineConfig {
            gguf,
            mmproj,
            adapter,
            chat_template: settings.model.chat_template,
            prompts,
            engine: settings.engine.clone(),
            max_explain_tokens: settings.analysis.max_explain_tokens,
            max_answer_tokens: settings.analysis.max_answer_tokens,
        }
    }

    /// The engine's own rules on its configuration, named by settings key.
    pub fn check(&self) -> Result<(), EngineError> {
        if self.engine.n_seq_max < SEQS_PER_REQUEST {
            return Err(EngineError::Config {
                key: "engine.n_seq_max",
                reason: format!(
                    "must be at least {SEQS_PER_REQUEST} (one request needs up to {SEQS_PER_REQUEST} sequences), got {}",
                    self.engine.n_seq_max
                ),
            });
        }
        Ok(())
    }

    /// Requests analysed at once: `max_in_flight`, as far as the sequence ids
    /// (`n_seq_max / SEQS_PER_REQUEST`) allow, and at least one.
    pub fn max_jobs(&self) -> usize {
        let e = &self.engine;
        (e.max_in_flight.min(e.n_seq_max / SEQS_PER_REQUEST)).max(1) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EngineConfig {
        let settings = Settings::embedded().expect("embedded settings");
        EngineConfig::from_settings(
            &settings,
            "m.gguf".into(),
            "p.gguf".into(),
            None,
            Prompts::embedded(),
        )
    }

    #[test]
    fn the_settings_section_is_carried_whole() {
        let settings = Settings::embedded().unwrap();
        let c = config();
        assert_eq!(c.engine.n_ctx, settings.engine.n_ctx);
        assert_eq!(c.engine.n_seq_max, settings.engine.n_seq_max);
        assert_eq!(c.engine.max_in_flight, settings.engine.max_in_flight);
        assert_eq!(c.chat_template, settings.model.chat_template);
        assert_eq!(c.max_explain_tokens, settings.analysis.max_explain_tokens);
        assert_eq!(c.max_answer_tokens, settings.analysis.max_answer_tokens);
        assert_eq!(
            c.engine.conversation_cache_bytes,
            settings.engine.conversation_cache_bytes
        );
        assert!(c.check().is_ok(), "the embedded settings pass");
    }

    #[test]
    fn n_seq_max_below_one_request_is_rejected_naming_the_key() {
        let mut c = config();
        c.engine.n_seq_max = SEQS_PER_REQUEST - 1;
        match c.check() {
            Err(EngineError::Config { key, reason }) => {
                assert_eq!(key, "engine.n_seq_max");
                assert!(
                    reason.contains(&format!("got {}", SEQS_PER_REQUEST - 1)),
                    "{reason}"
                );
            }
            other => panic!("expected a config error, got {other:?}"),
        }
        c.engine.n_seq_max = 0;
        assert!(c.check().is_err());
        c.engine.n_seq_max = SEQS_PER_REQUEST;
        assert!(c.check().is_ok(), "exactly one request's worth is enough");
    }

    #[test]
    fn max_jobs_is_bounded_by_in_flight_and_by_sequence_ids() {
        let mut c = config();
        c.engine.n_seq_max = 4 * SEQS_PER_REQUEST;
        c.engine.max_in_flight = 16;
        assert_eq!(c.max_jobs(), 4, "sequence ids bound it");
        c.engine.max_in_flight = 2;
        assert_eq!(c.max_jobs(), 2, "max_in_flight bounds it");
        c.engine.n_seq_max = 4 * SEQS_PER_REQUEST + SEQS_PER_REQUEST - 1;
        c.engine.max_in_flight = 100;
        assert_eq!(c.max_jobs(), 4, "a partial block is no block");
        c.engine.max_in_flight = 0;
        assert_eq!(c.max_jobs(), 1, "at least one");
    }
}
