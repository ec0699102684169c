//! LoRA adapters on the attention projections: the trainable A/B pairs, and
//! their GGUF form as llama.cpp loads it (`blk.N.attn_q.weight.lora_a`,
//! PEFT's (r, in) / (out, r) layout, scaled by alpha / r).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::shape::BaseConfig;
use super::TrainError;
pub use crate::domain::lora::Projection;

struct Pair {
    a: Var,
    b: Var,
}

impl Pair {
    /// Trainable copies of A (r, in) and B (out, r).
    fn new(a: &Tensor, b: &Tensor) -> Result<Pair, TrainError> {
        Ok(Pair {
            a: Var::from_tensor(a)?,
            b: Var::from_tensor(b)?,
        })
    }
}

/// The trainable adapter: one A/B pair per (layer, projection).
pub struct LoraSet {
    pub rank: usize,
    pub alpha: f32,
    pairs: BTreeMap<(usize, Projection), Pair>,
    dropout: Option<(f32, RefCell<ChaCha8Rng>)>,
}

impl LoraSet {
    /// A fresh adapter: A drawn from a seeded normal (candle's own RNG cannot
    /// be seeded), B zero, so training starts from the base model exactly.
    pub fn init(
        config: &BaseConfig,
        targets: &[Projection],
        rank: usize,
        alpha: f32,
        seed: u64,
        device: &Device,
    ) -> Result<LoraSet, TrainError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let std = 1.0 / (config.n_embd as f32).sqrt();
        let mut pairs = BTreeMap::new();
        for l in 0..config.n_layer {
            for &p in targets {
                let a: Vec<f32> = (0..rank * config.n_embd)
                    .map(|_| {
                        let z: f32 = StandardNormal.sample(&mut rng);
                        std * z
                    })
                    .collect();
                let a = Tensor::from_vec(a, (rank, config.n_embd), device)?;
                let b = Tensor::zeros((config.out_dim(p), rank), candle_core::DType::F32, device)?;
                pairs.insert((l, p), Pair::new(&a, &b)?);
            }
        }
        Ok(LoraSet {
            rank,
            alpha,
            pairs,
            dropout: None,
        })
    }

    /// Turns input dropout on (training) with its own seeded generator.
    pub fn set_dropout(&mut self, p: f32, seed: u64) {
        self.dropout =
            (p > 0.0).then(|| (p, RefCell::new(ChaCha8Rng::seed_from_u64(seed ^ 0xD0D0))));
    }

    pub fn disable_dropout(&mut self) {
        self.dropout = None;
    }

    pub fn scale(&self) -> f64 {
        self.alpha as f64 / self.rank as f64
    }

    pub fn vars(&self) -> Vec<Var> {
        self.pairs
            .values()
            .flat_map(|p| [p.a.clone(), p.b.clone()])
            .collect()
    }

    /// (name, tensor) in GGUF naming, A then B for each pair.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        self.pairs
            .iter()
            .flat_map(|(&(l, p), pair)| {
                let name = |is_a| LoraTensorName::attention(l, p, is_a).gguf();
                [
                    (name(true), pair.a.as_tensor().clone()),
                    (name(false), pair.b.as_tensor().clone()),
                ]
            })
            .collect()
    }

    pub fn targets(&self) -> Vec<Projection> {
        let mut t: Vec<Projection> = self.pairs.keys().map(|(_, p)| *p).collect();
        t.sort();
        t.dedup();
        t
    }

    /// `y + scale · B·A·x` when this projection is adapted.
    pub(super) fn add_delta(
        &self,
        layer: usize,
        p: Projection,
        x: &Tensor,
        y: Tensor,
    ) -> Result<Tensor, TrainError> {
        let Some(pair) = self.pairs.get(&(layer, p)) else {
            return Ok(y);
        };
        let x = match &self.dropout {
            Some((rate, rng)) => {
                let keep = 1.0 - rate;
                let mut rng = rng.borrow_mut();
                let mask: Vec<f32> = (0..x.elem_count())
                    .map(|_| {
                        if rng.gen::<f32>() < keep {
                            1.0 / keep
                        } else {
                            0.0
                        }
                    })
                    .collect();
                (x * Tensor::from_vec(mask, x.shape(), x.device())?)?
            }
            None => x.clone(),
        };
        let delta = x.matmul(&pair.a.t()?)?.matmul(&pair.b.t()?)?;
        Ok((y + (delta * self.scale())?)?)
    }

    /// Reads an adapter GGUF whose tensors are all attention LoRAs of
    /// `config`'s shape (to continue training from a parent adapter).
    pub fn from_gguf(
        path: &Path,
        config: &BaseConfig,
        device: &Device,
    ) -> Result<LoraSet, TrainError> {
        let adapter = read_adapter(path, device)?;
        let mut pairs: BTreeMap<(usize, Projection), (Option<Tensor>, Option<Tensor>)> =
            BTreeMap::new();
        for (name, t) in adapter.tensors {
            let parsed = parse_lora_name(&name).ok_or_else(|| {
                TrainError::Adapter(format!(
                    "{}: `{name}` is not an attention LoRA tensor",
                    path.display()
                ))
            })?;
            let (layer, p, is_a) = parsed;
            let slot = pairs.entry((layer, p)).or_default();
            if is_a {
                slot.0 = Some(t);
            } else {
                slot.1 = Some(t);
            }
        }
        let mut rank = 0;
        let mut out = BTreeMap::new();
        for ((l, p), (a, b)) in pairs {
            let (Some(a), Some(b)) = (a, b) else {
                return Err(TrainError::Adapter(format!(
                    "layer {l} {p:?}: lora_a or lora_b missing"
                )));
            };
            rank = a.dim(0)?;
            if l >= config.n_layer
                || a.dims() != [rank, config.n_embd]
                || b.dims() != [config.out_dim(p), rank]
            {
                return Err(TrainError::Adapter(format!(
                    "layer {l} {p:?}: shapes {:?}/{:?} do not fit the base",
                    a.dims(),
                    b.dims()
                )));
            }
            out.insert((l, p), Pair::new(&a, &b)?);
        }
        Ok(LoraSet {
            rank,
            alpha: adapter.alpha,
            pairs: out,
            dropout: None,
        })
    }
}

/// The modules a LoRA tensor can adapt: (llama.cpp name, PEFT name for LLaMA).
const MODULES: [(&str, &str); 7] = [
    ("attn_q", "q_proj"),
    ("attn_k", "k_proj"),
    ("attn_v", "v_proj"),
    ("attn_output", "o_proj"),
    ("ffn_gate", "gate_proj"),
    ("ffn_up", "up_proj"),
    ("ffn_down", "down_proj"),
];

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
        let module = MODULES.iter().find(|(gguf, _)| *gguf == module)?.0;
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
        let module = MODULES.iter().find(|(_, p)| *p == peft)?.0;
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
