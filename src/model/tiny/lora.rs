//! LoRA adapters for the generated text model.

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::{normal, s, GenerateError, Meta, ModelShape, Tensors};

/// LoRA metadata: alpha equal to the rank, so a scale of 1 applies B·A as is.
pub(super) fn lora_metadata(shape: &ModelShape) -> Meta {
    vec![
        ("general.architecture".into(), s("llama")),
        ("general.type".into(), s("adapter")),
        ("adapter.type".into(), s("lora")),
        (
            "adapter.lora.alpha".into(),
            Value::F32(shape.lora_rank as f32),
        ),
    ]
}

/// A/B on attn_q and attn_v of every layer, in PEFT's layout: A is (r, in),
/// B is (out, r), both small so the effect stays near-linear in the scale.
/// Plus a LoRA on the output projection that moves only the "Yes" and "No"
/// logits, in opposite directions: the detection answer moves clearly, and
/// linearly in the adapter scale.
pub(super) fn lora_tensors(
    shape: &ModelShape,
    n_vocab: usize,
    yes_no: Option<(usize, usize)>,
    rng: &mut ChaCha8Rng,
) -> Result<Tensors, GenerateError> {
    let (e, r) = (shape.n_embd, shape.lora_rank);
    let kv = e / shape.n_head as usize * shape.n_head_kv as usize;
    let inv = |n: usize| 1.0 / (n as f32).sqrt();
    let f = GgmlDType::F32;
    let mut t = Vec::new();
    for l in 0..shape.n_layer {
        for (name, out) in [("attn_q", e), ("attn_v", kv)] {
            let base = format!("blk.{l}.{name}.weight");
            t.push(normal(
                rng,
                &format!("{base}.lora_a"),
                &[r, e],
                0.0,
                inv(e),
                f,
            )?);
            t.push(normal(
                rng,
                &format!("{base}.lora_b"),
                &[out, r],
                0.0,
                0.2 * inv(r),
                f,
            )?);
        }
    }
    if let Some((yes, no)) = yes_no {
        t.push(normal(
            rng,
            "output.weight.lora_a",
            &[r, e],
            0.0,
            inv(e),
            f,
        )?);
        let u: Vec<f32> = (0..r).map(|_| StandardNormal.sample(rng)).collect();
        let mut b = vec![0f32; n_vocab * r];
        for k in 0..r {
            b[yes * r + k] = 0.5 * u[k];
            b[no * r + k] = -0.5 * u[k];
        }
        let wrap = |source| GenerateError::Tensor {
            name: "output.weight.lora_b".into(),
            source,
        };
        let tensor = Tensor::from_vec(b, (n_vocab, r), &Device::Cpu).map_err(wrap)?;
        t.push((
            "output.weight.lora_b".into(),
            QTensor::quantize(&tensor, f).map_err(wrap)?,
        ));
    }
    Ok(t)
}
