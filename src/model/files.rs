//! Which weights to serve: the configured GGUF + mmproj (+ adapter), or the
//! generated tiny model when none is configured.

use std::path::{Path, PathBuf};

use crate::domain::adapter::AdapterSpec;
use crate::domain::prompts::Prompts;
use crate::model::tiny::{generate, GenerateError, GeneratedModel, ModelShape};
use crate::settings::Settings;

/// The seed of the default tiny model; tests and docs refer to its files.
pub const TINY_SEED: u64 = 42;

#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub gguf: PathBuf,
    pub mmproj: PathBuf,
    /// True when these are the generated random-weight model.
    pub generated: bool,
}

/// The configured model, or the tiny one (generated on first use).
pub fn resolve_model(settings: &Settings, prompts: &Prompts) -> Result<ModelFiles, GenerateError> {
    let m = &settings.model;
    if !m.gguf.is_empty() {
        return Ok(ModelFiles {
            gguf: m.gguf.clone().into(),
            mmproj: m.mmproj.clone().into(),
            generated: false,
        });
    }
    let tiny = ensure_tiny_model(&m.tiny_dir, prompts)?;
    Ok(ModelFiles {
        gguf: tiny.gguf,
        mmproj: tiny.mmproj,
        generated: true,
    })
}

/// Generates the tiny model into `dir` unless it is already there.
pub fn ensure_tiny_model(dir: &Path, prompts: &Prompts) -> Result<GeneratedModel, GenerateError> {
    let existing = GeneratedModel::in_dir(dir);
    if existing.exists() {
        return Ok(existing);
    }
    generate(dir, &ModelShape::tiny(), &prompts.all_texts(), TINY_SEED)
}

/// The warning shown whenever the generated model serves verdicts.
pub fn tiny_model_warning(files: &ModelFiles) -> String {
    format!(
        "dfa: no model configured, so the generated random-weight test model in {} is used.\n\
         dfa: ITS VERDICTS ARE MEANINGLESS. To serve real weights set model.gguf and model.mmproj\n\
         dfa: (DFA__MODEL__GGUF=… DFA__MODEL__MMPROJ=…, or a config/$DFA_ENV.toml); see models/README.md.",
        files.gguf.parent().unwrap_or(Path::new(".")).display()
    )
}

/// The adapter named by a CLI flag or the settings; its id is the file stem.
pub fn adapter_spec(path: &str, scale: f32) -> Option<AdapterSpec> {
    if path.is_empty() {
        return None;
    }
    let path = PathBuf::from(path);
    let id = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "adapter".into());
    Some(AdapterSpec {
        id,
        path,
        scale,
        mmproj: None,
    })
}
