//! The frozen base LLM, read from the same GGUF the workers serve and
//! dequantised once, and its forward pass written to match llama.cpp's
//! `llama` graph: RMSNorm, "normal" (interleaved-pair) RoPE, GQA, SwiGLU.
//!
//! Only differentiable candle ops are used: the fused kernels
//! (`ops::rms_norm`, `softmax_last_dim`, `rope_i`) have no backward pass and
//! would silently cut the LoRA's gradients.

use std::fs::File;
use std::path::Path;

use candle_core::backend::BackendStorage;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Shape, Tensor, D};
use candle_nn::ops::{rms_norm_slow, softmax};
use candle_nn::rotary_emb::rope_i_slow;

use super::lora::{LoraSet, Projection};
use super::shape::BaseConfig;
use super::TrainError;
use crate::domain::lora::WeightsDtype;

struct Layer {
    attn_norm: Tensor,
    /// Weights stored transposed, (in, out), so a projection is one matmul.
    wq: Tensor,
    wk: Tensor,
    wv: Tensor,
    wo: Tensor,
    ffn_norm: Tensor,
    gate: Tensor,
    up: Tensor,
    down: Tensor,
}

pub struct BaseModel {
    pub config: BaseConfig,
    pub device: Device,
    token_embd: Tensor,
    layers: Vec<Layer>,
    output_norm: Tensor,
    /// (E, V), transposed like the layer weights.
    output: Tensor,
}

fn meta_u32(content: &Content, key: &str) -> Result<usize, TrainError> {
    content
        .metadata
        .get(key)
        .and_then(|v| v.to_u32().ok())
        .map(|v| v as usize)
        .ok_or_else(|| TrainError::Base(format!("metadata `{key}` missing or not an integer")))
}

fn meta_f32(content: &Content, key: &str, default: f32) -> f32 {
    content
        .metadata
        .get(key)
        .and_then(|v| v.to_f32().ok())
        .unwrap_or(default)
}

impl BaseModel {
    /// The base with F32 weights.
    pub fn load(path: &Path, device: &Device) -> Result<BaseModel, TrainError> {
        Self::load_as(path, device, WeightsDtype::F32)
    }

    /// The base with its matrices (embeddings, projections, output) held as
    /// `weights`; norms stay F32. Activations are F32 between the matrices.
    pub fn load_as(
        path: &Path,
        device: &Device,
        weights: WeightsDtype,
    ) -> Result<BaseModel, TrainError> {
        let held = match weights {
            WeightsDtype::F32 => DType::F32,
            WeightsDtype::Bf16 => DType::BF16,
        };
        let base_err =
            |e: &dyn std::fmt::Display| TrainError::Base(format!("{}: {e}", path.display()));
        let mut file = File::open(path).map_err(|e| base_err(&e))?;
        let content = Content::read(&mut file).map_err(|e| base_err(&e))?;
        let architecture = match content.metadata.get("general.architecture") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(TrainError::Base("general.architecture missing".into())),
        };
        if architecture != "llama" {
            return Err(TrainError::Base(format!(
                "architecture `{architecture}` is not supported by the trainer (only `llama`, as LLaVA-1.5's Vicuna)"
            )));
        }
        let a = &architecture;
        let n_embd = meta_u32(&content, &format!("{a}.embedding_length"))?;
        let n_head = meta_u32(&content, &format!("{a}.attention.head_count"))?;
        let config = BaseConfig {
            architecture: architecture.clone(),
            n_embd,
            n_layer: meta_u32(&content, &format!("{a}.block_count"))?,
            n_head,
            n_head_kv: meta_u32(&content, &format!("{a}.attention.head_count_kv"))
                .unwrap_or(n_head),
            n_ff: meta_u32(&content, &format!("{a}.feed_forward_length"))?,
            n_vocab: 0,
            eps: meta_f32(
                &content,
                &format!("{a}.attention.layer_norm_rms_epsilon"),
                1e-5,
            ),
            rope_base: meta_f32(&content, &format!("{a}.rope.freq_base"), 10_000.0),
        };
        let head_dim = config.head_dim();
        if let Ok(rope_dims) = meta_u32(&content, &format!("{a}.rope.dimension_count")) {
            if rope_dims != head_dim {
                return Err(TrainError::Base(format!(
                    "partial RoPE ({rope_dims} of {head_dim} dims) is not supported"
                )));
            }
        }
        let mut read = |name: &str| -> Result<Tensor, TrainError> {
            content
                .tensor(&mut file, name, device)
                .and_then(|q| q.dequantize(device))
                .and_then(|t| {
                    // Rank-1 tensors (norms) are small and stay exact.
                    let dtype = if t.rank() == 1 { DType::F32 } else { held };
                    t.to_dtype(dtype)
                })
                .map_err(|e| TrainError::Base(format!("tensor {name}: {e}")))
        };
        let t = |x: Tensor| x.t().and_then(|x| x.contiguous()).map_err(TrainError::from);
        let token_embd = read("token_embd.weight")?;
        let output = match read("output.weight") {
            Ok(w) => w,
            // Tied embeddings: llama.cpp falls back to token_embd too.
            Err(_) => token_embd.clone(),
        };
        let mut layers = Vec::with_capacity(config.n_layer);
        for l in 0..config.n_layer {
            let mut w = |n: &str| read(&format!("blk.{l}.{n}.weight"));
            layers.push(Layer {
                attn_norm: w("attn_norm")?,
                wq: t(w("attn_q")?)?,
                wk: t(w("attn_k")?)?,
                wv: t(w("attn_v")?)?,
                wo: t(w("attn_output")?)?,
                ffn_norm: w("ffn_norm")?,
                gate: t(w("ffn_gate")?)?,
                up: t(w("ffn_up")?)?,
                down: t(w("ffn_down")?)?,
            });
        }
        let output_norm = read("output_norm.weight")?;
        let config = BaseConfig {
            n_vocab: token_embd.dim(0)?,
            ..config
        };
        Ok(BaseModel {
            config,
            device: device.clone(),
            token_embd,
            layers,
            output_norm,
            output: t(output)?,
        })
    }

    /// Token embeddings, (n, E).
    pub fn embed_tokens(&self, tokens: &[u32]) -> Result<Tensor, TrainError> {
        let ids = Tensor::new(tokens, &self.device)?;
        Ok(self
            .token_embd
            .index_select(&ids, 0)?
            .to_dtype(DType::F32)?)
    }

    /// Final hidden states (after the output norm), (T, E), for a sequence
    /// of input embeddings at positions 0..T with causal attention.
    pub fn hidden(&self, x: &Tensor, lora: Option<&LoraSet>) -> Result<Tensor, TrainError> {
        let c = &self.config;
        let (n, _) = x.dims2()?;
        let hd = c.head_dim();
        let (cos, sin) = self.rope_tables(n)?;
        let mask = causal_mask(n, &self.device)?;
        let group = c.n_head / c.n_head_kv;
        let mut x = x.clone();
        for (l, layer) in self.layers.iter().enumerate() {
            let h = rms_norm_slow(&x, &layer.attn_norm, c.eps)?;
            let proj = |p: Projection, w: &Tensor| -> Result<Tensor, TrainError> {
                let y = frozen_matmul(&h, w)?;
                match lora {
                    Some(set) => set.add_delta(l, p, &h, y),
                    None => Ok(y),
                }
            };
            let heads = |t: Tensor, nh: usize| -> Result<Tensor, TrainError> {
                Ok(t.reshape((1, n, nh, hd))?.transpose(1, 2)?.contiguous()?)
            };
            let q = rope_i_slow(
                &heads(proj(Projection::Q, &layer.wq)?, c.n_head)?,
                &cos,
                &sin,
            )?;
            let k = rope_i_slow(
                &heads(proj(Projection::K, &layer.wk)?, c.n_head_kv)?,
                &cos,
                &sin,
            )?;
            let v = heads(proj(Projection::V, &layer.wv)?, c.n_head_kv)?;
            let (k, v) = (repeat_kv(k, group)?, repeat_kv(v, group)?);
            let scores = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?;
            let att = softmax(&scores.broadcast_add(&mask)?, D::Minus1)?;
            let o = att
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((n, c.n_embd))?;
            let o = {
                let y = frozen_matmul(&o, &layer.wo)?;
                match lora {
                    Some(set) => set.add_delta(l, Projection::O, &o, y)?,
                    None => y,
                }
            };
            x = (x + o)?;
            let h = rms_norm_slow(&x, &layer.ffn_norm, c.eps)?;
            let gated = (candle_nn::ops::silu(&frozen_matmul(&h, &layer.gate)?)?
                * frozen_matmul(&h, &layer.up)?)?;
            x = (x + frozen_matmul(&gated, &layer.down)?)?;
        }
        Ok(rms_norm_slow(&x, &self.output_norm, c.eps)?)
    }

    /// Logits for hidden states, (n, V).
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor, TrainError> {
        frozen_matmul(hidden, &self.output)
    }

    fn rope_tables(&self, n: usize) -> Result<(Tensor, Tensor), TrainError> {
        let hd = self.config.head_dim();
        let base = self.config.rope_base as f64;
        // Angles in f64 first: llama.cpp computes theta with float powers, and
        // f64 here keeps our error well below the 1e-4 agreement bound.
        let mut cos = Vec::with_capacity(n * hd / 2);
        let mut sin = Vec::with_capacity(n * hd / 2);
        for pos in 0..n {
            for i in 0..hd / 2 {
                let theta = pos as f64 * base.powf(-2.0 * i as f64 / hd as f64);
                cos.push(theta.cos() as f32);
                sin.push(theta.sin() as f32);
            }
        }
        Ok((
            Tensor::from_vec(cos, (n, hd / 2), &self.device)?,
            Tensor::from_vec(sin, (n, hd / 2), &self.device)?,
        ))
    }
}

/// `x · w` for a frozen weight `w`: candle's matmul also computes the
/// weight's gradient in the backward pass, which a LoRA never uses (a third
/// of the training arithmetic, and a weight-sized tensor per projection held
/// until the step ends). The forward is the same gemm call, so logits are
/// bit-identical. CPU only; other devices use the plain matmul.
///
/// A BF16 weight (`retrain.weights_dtype = "bf16"`) multiplies the
/// activations rounded to BF16, as llama.cpp's BF16 dot product does, and the
/// product stays F32. On the CPU the op widens the weight for the one gemm
/// (nothing weight-sized is kept for the backward pass); elsewhere the
/// device's BF16 matmul runs and its product is widened.
fn frozen_matmul(x: &Tensor, w: &Tensor) -> Result<Tensor, TrainError> {
    if x.device().is_cpu() && x.dims().len() == 2 && w.dims().len() == 2 {
        Ok(x.apply_op2(w, FrozenMatmul)?)
    } else if w.dtype() == x.dtype() {
        Ok(x.matmul(w)?)
    } else {
        Ok(x.to_dtype(w.dtype())?.matmul(w)?.to_dtype(x.dtype())?)
    }
}

struct FrozenMatmul;

impl CustomOp2 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (m, k) = l1.shape().dims2()?;
        let (k2, n) = l2.shape().dims2()?;
        if k != k2 {
            candle_core::bail!("frozen-matmul: ({m}, {k}) x ({k2}, {n})");
        }
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::BF16(_)) => {
                // Round the activations through BF16 and widen both, so the
                // gemm is F32's and its product is not rounded again.
                let x = s1.to_dtype(l1, DType::BF16)?;
                let x = x.to_dtype(&Layout::contiguous(l1.shape()), DType::F32)?;
                let w = s2.to_dtype(l2, DType::F32)?;
                let (l1, l2) = (
                    Layout::contiguous(l1.shape()),
                    Layout::contiguous(l2.shape()),
                );
                x.matmul(&w, (1, m, n, k), &l1, &l2)?
            }
            _ => s1.matmul(s2, (1, m, n, k), l1, l2)?,
        };
        Ok((out, Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        // The rounding of x passes the gradient straight through.
        let wt = w.t()?;
        let wt = if wt.dtype() == x.dtype() {
            wt
        } else {
            wt.to_dtype(x.dtype())?
        };
        Ok((Some(grad.matmul(&wt)?), None))
    }
}

/// (1, n_kv, T, hd) → (1, n_kv·group, T, hd): query head j reads KV head j / group.
fn repeat_kv(x: Tensor, group: usize) -> Result<Tensor, TrainError> {
    if group == 1 {
        return Ok(x);
    }
    let (b, n_kv, t, hd) = x.dims4()?;
    Ok(x.unsqueeze(2)?
        .expand((b, n_kv, group, t, hd))?
        .reshape((b, n_kv * group, t, hd))?)
}

fn causal_mask(n: usize, device: &Device) -> Result<Tensor, TrainError> {
    let mask: Vec<f32> = (0..n)
        .flat_map(|i| (0..n).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    Ok(Tensor::from_vec(mask, (n, n), device)?)
}
