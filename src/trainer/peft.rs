//! PEFT LoRA (`adapter_config.json` + `adapter_model.safetensors`, LLaMA
//! module names) → our GGUF adapter. A rename (`adapter_file::LoraTensorName`) plus
//! the adapter keys: PEFT's lora_A is (r, in) and lora_B (out, r), the layout
//! llama.cpp reads.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::Deserialize;

use super::adapter_file::LoraTensorName;
use super::TrainError;

#[derive(Debug, Deserialize)]
struct AdapterConfig {
    r: usize,
    lora_alpha: f32,
    #[serde(default)]
    peft_type: Option<String>,
    #[serde(default)]
    use_dora: bool,
    #[serde(default)]
    use_rslora: bool,
}

/// A PEFT adapter converted to llama.cpp names.
pub struct ImportedAdapter {
    pub rank: usize,
    pub alpha: f32,
    pub tensors: Vec<(String, Tensor)>,
}

/// `base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight` →
/// `blk.3.attn_q.weight.lora_a`.
pub fn gguf_name(peft: &str) -> Option<String> {
    LoraTensorName::parse_peft(peft).map(|t| t.gguf())
}

/// Reads a PEFT adapter directory (or the two files in it).
pub fn read_peft(dir: &Path) -> Result<ImportedAdapter, TrainError> {
    let cfg_path = dir.join("adapter_config.json");
    let st_path = dir.join("adapter_model.safetensors");
    let err =
        |p: &Path, e: &dyn std::fmt::Display| TrainError::Adapter(format!("{}: {e}", p.display()));
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| err(&cfg_path, &e))?;
    let cfg: AdapterConfig = serde_json::from_str(&text).map_err(|e| err(&cfg_path, &e))?;
    if cfg.peft_type.as_deref().is_some_and(|t| t != "LORA") {
        return Err(err(&cfg_path, &"peft_type is not LORA"));
    }
    if cfg.use_dora || cfg.use_rslora {
        return Err(err(
            &cfg_path,
            &"DoRA and rsLoRA adapters cannot be served by llama.cpp as plain LoRA",
        ));
    }
    if cfg.r == 0 {
        return Err(err(&cfg_path, &"r is 0"));
    }
    let loaded =
        candle_core::safetensors::load(&st_path, &Device::Cpu).map_err(|e| err(&st_path, &e))?;
    let mut tensors = BTreeMap::new();
    for (name, t) in loaded {
        let target = LoraTensorName::parse_peft(&name).ok_or_else(|| {
            err(
                &st_path,
                &format!("unsupported tensor `{name}` (LLaMA q/k/v/o/gate/up/down LoRA only)"),
            )
        })?;
        let t = t
            .to_dtype(candle_core::DType::F32)
            .map_err(|e| err(&st_path, &e))?;
        let expect_rank_dim = if target.is_a { 0 } else { 1 };
        if t.rank() != 2 || t.dim(expect_rank_dim).ok() != Some(cfg.r) {
            return Err(err(
                &st_path,
                &format!(
                    "`{name}` has shape {:?}, expected rank {} on dim {expect_rank_dim}",
                    t.dims(),
                    cfg.r
                ),
            ));
        }
        tensors.insert(target.gguf(), (target, t));
    }
    if tensors.is_empty() {
        return Err(err(&st_path, &"no LoRA tensors"));
    }
    for (name, (target, _)) in &tensors {
        let partner = target.partner().gguf();
        if !tensors.contains_key(&partner) {
            return Err(err(&st_path, &format!("`{name}` has no `{partner}`")));
        }
    }
    Ok(ImportedAdapter {
        rank: cfg.r,
        alpha: cfg.lora_alpha,
        tensors: tensors
            .into_iter()
            .map(|(name, (_, t))| (name, t))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::gguf_name;

    #[test]
    fn renames_llama_modules() {
        assert_eq!(
            gguf_name("base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight").as_deref(),
            Some("blk.3.attn_q.weight.lora_a")
        );
        assert_eq!(
            gguf_name("base_model.model.model.layers.10.mlp.down_proj.lora_B.weight").as_deref(),
            Some("blk.10.ffn_down.weight.lora_b")
        );
        assert_eq!(gguf_name("base_model.model.lm_head.lora_A.weight"), None);
        assert_eq!(
            gguf_name("base_model.model.model.layers.1.self_attn.q_proj.base_layer.weight"),
            None
        );
    }
}
