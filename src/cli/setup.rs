//! Loading settings, prompts and the engine for a command.

use std::path::Path;

use anyhow::Context;

use super::AdapterChoice;
use crate::domain::prompts::Prompts;
use crate::engine::{Engine, EngineConfig};
use crate::faces::FaceStage;
use crate::model::files::{adapter_spec, resolve_model, tiny_model_warning};
use crate::settings::Settings;

pub struct Loaded {
    pub settings: Settings,
    pub engine: Engine,
    /// The adapter the engine started with (flags or settings).
    pub adapter: Option<crate::engine::AdapterSpec>,
    /// The face detector, as `[faces]` configures it.
    pub faces: FaceStage,
}

pub fn load_settings(config_dir: &Path) -> anyhow::Result<(Settings, Prompts)> {
    let settings = Settings::load(config_dir)?;
    let prompts = Prompts::load(&settings.model.prompts)?;
    Ok((settings, prompts))
}

pub async fn start_engine(config_dir: &Path, adapter: &AdapterChoice) -> anyhow::Result<Loaded> {
    let (settings, prompts) = load_settings(config_dir)?;
    let files = resolve_model(&settings, &prompts).context("preparing the generated test model")?;
    if files.generated {
        eprintln!("{}", tiny_model_warning(&files));
    }
    let scale = settings.model.adapter_scale;
    let adapter = if adapter.no_adapter {
        None
    } else if let Some(path) = &adapter.adapter {
        if !path.is_file() {
            anyhow::bail!("--adapter: file not found: {}", path.display());
        }
        adapter_spec(&path.to_string_lossy(), scale)
    } else {
        adapter_spec(&settings.model.adapter, scale)
    };
    let config = EngineConfig::from_settings(
        &settings,
        files.gguf,
        files.mmproj,
        adapter.clone(),
        prompts,
    );
    let engine = Engine::start(config).await.context("starting the engine")?;
    let faces = FaceStage::new(&settings.faces).context("loading the face detector")?;
    Ok(Loaded {
        settings,
        engine,
        adapter,
        faces,
    })
}
