//! The LoRA adapters of the loaded model: every file loaded so far (llama.cpp
//! frees adapters only with the model) and which one is applied. Loading a
//! file needs `&mut LlamaModel`, so the engine thread does it between
//! contexts; switching among loaded files works on a live context.

use std::path::PathBuf;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::{LlamaLoraAdapter, LlamaModel};

use super::{AdapterSpec, EngineError};
use crate::domain::sha256_file;
use crate::domain::{AdapterIdentity, ModelIdentity};

struct LoadedAdapter {
    path: PathBuf,
    sha256: String,
    adapter: LlamaLoraAdapter,
}

/// The adapter state of the model: every file loaded so far (llama.cpp frees
/// adapters only with the model) and which one is applied.
pub(super) struct Adapters {
    loaded: Vec<LoadedAdapter>,
    pub(super) active: Option<(usize, AdapterSpec)>,
}

/// What switching to an adapter on a live context came to.
pub(super) enum Switch {
    Applied,
    /// The file is not loaded yet: it needs the model mutably, so no context.
    NeedsLoad,
}

impl Adapters {
    pub(super) fn new() -> Adapters {
        Adapters {
            loaded: Vec::new(),
            active: None,
        }
    }

    fn find(&self, path: &PathBuf) -> Option<usize> {
        self.loaded.iter().position(|a| &a.path == path)
    }

    pub(super) fn load(
        &mut self,
        model: &mut LlamaModel,
        spec: &AdapterSpec,
    ) -> Result<usize, EngineError> {
        if let Some(i) = self.find(&spec.path) {
            return Ok(i);
        }
        if !spec.path.is_file() {
            return Err(EngineError::Adapter(format!(
                "file not found: {}",
                spec.path.display()
            )));
        }
        let sha256 = sha256_file(&spec.path).map_err(|e| EngineError::Adapter(e.to_string()))?;
        let adapter = model
            .lora_adapter_init(&spec.path)
            .map_err(|e| EngineError::Adapter(format!("{}: {e}", spec.path.display())))?;
        self.loaded.push(LoadedAdapter {
            path: spec.path.clone(),
            sha256,
            adapter,
        });
        Ok(self.loaded.len() - 1)
    }

    /// Applies the active adapter to a context (or clears it).
    pub(super) fn apply(&mut self, ctx: &mut LlamaContext) -> Result<(), EngineError> {
        let err = |e: String| EngineError::Adapter(e);
        match &self.active {
            Some((i, spec)) => ctx
                .lora_adapter_set(&mut self.loaded[*i].adapter, spec.scale)
                .map_err(|e| err(e.to_string())),
            None => match self.loaded.first_mut() {
                Some(first) => ctx
                    .lora_adapter_remove(&mut first.adapter)
                    .map_err(|e| err(e.to_string())),
                None => Ok(()),
            },
        }
    }

    pub(super) fn identity(&self, base: &ModelIdentity) -> ModelIdentity {
        ModelIdentity {
            adapter: self.active.as_ref().map(|(i, spec)| AdapterIdentity {
                id: spec.id.clone(),
                sha256: self.loaded[*i].sha256.clone(),
                scale: spec.scale,
            }),
            ..base.clone()
        }
    }

    /// Switches adapters without a new context when the file is already
    /// loaded; on failure the previous adapter stays applied.
    pub(super) fn switch(
        &mut self,
        ctx: &mut LlamaContext,
        spec: Option<AdapterSpec>,
    ) -> Result<Switch, EngineError> {
        let previous = self.active.take();
        self.active = match &spec {
            None => None,
            Some(s) => match self.find(&s.path) {
                Some(i) => Some((i, s.clone())),
                None => {
                    self.active = previous;
                    return Ok(Switch::NeedsLoad);
                }
            },
        };
        if let Err(e) = self.apply(ctx) {
            self.active = previous;
            self.apply(ctx)?;
            return Err(e);
        }
        Ok(Switch::Applied)
    }
}
