//! LoRA adapters as GGUF files: the tensor names (llama.cpp's and PEFT's
//! spellings, in one table), reading an adapter and writing one.

use std::fs::File;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use super::TrainError;
use crate::domain::lora::{Projection, LORA_MODULES};

/// One LoRA tensor's identity, and the one place both of its spellings live:
/// llama.cpp's `blk.3.attn_q.weight.lora_a` and PEFT's
/// `base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoraTensorName {
    pub layer: usize,
    /// The module's llama.cpp name (`attn_q`, `ffn_down`, …).
    pub module: &'static str,
    /// A (r, in) rather than B (out, r).
    pub is_a: bool,
}

impl LoraTensorName {
    pub fn attention(layer: usize, p: Projection, is_a: bool) -> LoraTensorName {
        LoraTensorName {
            layer,
            module: p.gguf_name(),
            is_a,
        }
    }

    /// `blk.N.MODULE.weight.lora_{a,b}`.
    pub fn parse_gguf(name: &str) -> Option<LoraTensorName> {
        let rest = name.strip_prefix("blk.")?;
        let (layer, rest) = rest.split_once('.')?;
        let (module, suffix) = rest.split_once(".weight.lora_")?;
        let is_a = match suffix {
            "a" => true,
            "b" => false,
            _ => return None,
        };
        let module = LORA_MODULES.iter().find(|(gguf, _)| *gguf == module)?.0;
        Some(LoraTensorName {
            layer: layer.parse().ok()?,
            module,
            is_a,
        })
    }

    /// `….layers.N.{self_attn,mlp}.MODULE.lora_{A,B}.weight`.
    pub fn parse_peft(name: &str) -> Option<LoraTensorName> {
        let (_, rest) = name.split_once("layers.")?;
        let mut parts = rest.split('.');
        let layer: usize = parts.next()?.parse().ok()?;
        let _block = parts.next()?; // self_attn | mlp
        let peft = parts.next()?;
        let module = LORA_MODULES.iter().find(|(_, p)| *p == peft)?.0;
        let is_a = match parts.next()? {
            "lora_A" => true,
            "lora_B" => false,
            _ => return None,
        };
        (parts.next()? == "weight" && parts.next().is_none()).then_some(LoraTensorName {
            layer,
            module,
            is_a,
        })
    }

    /// The attention projection it adapts; none for an FFN module.
    pub fn projection(&self) -> Option<Projection> {
        Projection::parse(self.module)
    }

    /// The other half of its A/B pair.
    pub fn partner(self) -> LoraTensorName {
        LoraTensorName {
            is_a: !self.is_a,
            ..self
        }
    }

    /// The name llama.cpp reads.
    pub fn gguf(&self) -> String {
        let ab = if self.is_a { "a" } else { "b" };
        format!("blk.{}.{}.weight.lora_{ab}", self.layer, self.module)
    }
}

/// `blk.N.attn_q.weight.lora_a` → (N, Q, true); attention tensors only.
pub fn parse_lora_name(name: &str) -> Option<(usize, Projection, bool)> {
    let t = LoraTensorName::parse_gguf(name)?;
    Some((t.layer, t.projection()?, t.is_a))
}

/// An adapter GGUF's contents.
pub struct AdapterFile {
    pub architecture: String,
    pub alpha: f32,
    pub tensors: Vec<(String, Tensor)>,
}

pub fn read_adapter(path: &Path, device: &Device) -> Result<AdapterFile, TrainError> {
    let err = |e: &dyn std::fmt::Display| TrainError::Adapter(format!("{}: {e}", path.display()));
    let mut file = File::open(path).map_err(|e| err(&e))?;
    let content = Content::read(&mut file).map_err(|e| err(&e))?;
    let get_str = |k: &str| match content.metadata.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    if get_str("general.type").as_deref() != Some("adapter")
        || get_str("adapter.type").as_deref() != Some("lora")
    {
        return Err(err(
            &"not a LoRA adapter GGUF (general.type / adapter.type)",
        ));
    }
    let alpha = content
        .metadata
        .get("adapter.lora.alpha")
        .and_then(|v| v.to_f32().ok())
        .ok_or_else(|| err(&"adapter.lora.alpha missing"))?;
    let names: Vec<String> = content.tensor_infos.keys().cloned().collect();
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let t = content
            .tensor(&mut file, &name, device)
            .and_then(|q| q.dequantize(device))
            .map_err(|e| err(&format!("{name}: {e}")))?;
        tensors.push((name, t));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(AdapterFile {
        architecture: get_str("general.architecture").unwrap_or_default(),
        alpha,
        tensors,
    })
}

/// Writes an adapter GGUF llama.cpp loads; `extra` adds `dfa.*` provenance
/// keys (llama.cpp ignores keys it does not know).
pub fn write_adapter(
    path: &Path,
    architecture: &str,
    alpha: f32,
    tensors: &[(String, Tensor)],
    extra: &[(String, String)],
) -> Result<(), TrainError> {
    let mut meta: Vec<(String, Value)> = vec![
        (
            "general.architecture".into(),
            Value::String(architecture.into()),
        ),
        ("general.type".into(), Value::String("adapter".into())),
        ("adapter.type".into(), Value::String("lora".into())),
        ("adapter.lora.alpha".into(), Value::F32(alpha)),
    ];
    meta.extend(
        extra
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone()))),
    );
    let mut qs = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t
            .to_device(&Device::Cpu)?
            .to_dtype(candle_core::DType::F32)?;
        qs.push((name.clone(), QTensor::quantize(&t, GgmlDType::F32)?));
    }
    Ok(crate::model::gguf_write::write_atomic(path, &meta, &qs)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_name_the_same_tensor() {
        let peft = "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight";
        let t = LoraTensorName::parse_peft(peft).unwrap();
        assert_eq!(t, LoraTensorName::attention(3, Projection::Q, true));
        assert_eq!(t.gguf(), "blk.3.attn_q.weight.lora_a");
        assert_eq!(LoraTensorName::parse_gguf(&t.gguf()), Some(t));
        assert_eq!(t.partner().gguf(), "blk.3.attn_q.weight.lora_b");
        assert_eq!(
            parse_lora_name("blk.1.attn_output.weight.lora_b"),
            Some((1, Projection::O, false))
        );
        let ffn = LoraTensorName::parse_gguf("blk.0.ffn_down.weight.lora_a").unwrap();
        assert_eq!(ffn.projection(), None);
        assert_eq!(parse_lora_name("blk.0.ffn_down.weight.lora_a"), None);
        assert_eq!(
            LoraTensorName::parse_gguf("blk.0.attn_q.weight.lora_c"),
            None
        );
        assert_eq!(
            LoraTensorName::parse_gguf("blk.x.attn_q.weight.lora_a"),
            None
        );
    }
}
