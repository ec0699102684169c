//! The mmproj: a CLIP vision tower with LLaVA's MLP projector.

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::GgmlDType;
use rand_chacha::ChaCha8Rng;

use super::{normal, s, u, GenerateError, Meta, ModelShape, Tensors};

pub(super) fn clip_metadata(shape: &ModelShape) -> Meta {
    let v = &shape.vision;
    let f3 = |x: f32| Value::Array(vec![Value::F32(x); 3]);
    vec![
        ("general.architecture".into(), s("clip")),
        ("general.name".into(), s("dfa-generated-random-clip")),
        ("clip.has_vision_encoder".into(), Value::Bool(true)),
        ("clip.has_text_encoder".into(), Value::Bool(false)),
        ("clip.has_llava_projector".into(), Value::Bool(true)),
        ("clip.projector_type".into(), s("mlp")),
        ("clip.use_gelu".into(), Value::Bool(true)),
        ("clip.vision.image_size".into(), Value::U32(v.image_size)),
        ("clip.vision.patch_size".into(), Value::U32(v.patch_size)),
        ("clip.vision.embedding_length".into(), u(v.n_embd)),
        ("clip.vision.feed_forward_length".into(), u(v.n_ff)),
        ("clip.vision.block_count".into(), u(v.n_layer)),
        ("clip.vision.projection_dim".into(), u(shape.n_embd)),
        (
            "clip.vision.attention.head_count".into(),
            Value::U32(v.n_head),
        ),
        (
            "clip.vision.attention.layer_norm_epsilon".into(),
            Value::F32(1e-5),
        ),
        ("clip.vision.image_mean".into(), f3(0.5)),
        ("clip.vision.image_std".into(), f3(0.5)),
    ]
}

pub(super) fn clip_tensors(
    shape: &ModelShape,
    rng: &mut ChaCha8Rng,
) -> Result<Tensors, GenerateError> {
    let v = &shape.vision;
    let (e, p) = (v.n_embd, v.patch_size as usize);
    let n_pos = (v.image_size as usize / p).pow(2) + 1;
    let inv = |n: usize| 1.0 / (n as f32).sqrt();
    let f32_ = GgmlDType::F32;
    let w = shape.dtype;
    let mut t = vec![
        // The convolution kernel is F16 in every LLaVA mmproj.
        normal(
            rng,
            "v.patch_embd.weight",
            &[e, 3, p, p],
            0.0,
            inv(3 * p * p),
            GgmlDType::F16,
        )?,
        normal(rng, "v.patch_embd.bias", &[e], 0.0, 0.1, f32_)?,
        normal(rng, "v.class_embd", &[e], 0.0, 1.0, f32_)?,
        normal(rng, "v.position_embd.weight", &[n_pos, e], 0.0, 0.5, f32_)?,
        normal(rng, "v.pre_ln.weight", &[e], 1.0, 0.1, f32_)?,
        normal(rng, "v.pre_ln.bias", &[e], 0.0, 0.1, f32_)?,
    ];
    let ff = v.n_ff;
    // (tensor, shape, mean, std, type) per block, in the order clip.cpp reads.
    let mut block: Vec<(String, Vec<usize>, f32, f32, GgmlDType)> = Vec::new();
    for name in ["attn_q", "attn_k", "attn_v", "attn_out"] {
        block.push((format!("{name}.weight"), vec![e, e], 0.0, inv(e), w));
        block.push((format!("{name}.bias"), vec![e], 0.0, 0.1, f32_));
    }
    for name in ["ln1", "ln2"] {
        block.push((format!("{name}.weight"), vec![e], 1.0, 0.1, f32_));
        block.push((format!("{name}.bias"), vec![e], 0.0, 0.1, f32_));
    }
    block.extend([
        ("ffn_up.weight".into(), vec![ff, e], 0.0, inv(e), w),
        ("ffn_up.bias".into(), vec![ff], 0.0, 0.1, f32_),
        ("ffn_down.weight".into(), vec![e, ff], 0.0, inv(ff), w),
        ("ffn_down.bias".into(), vec![e], 0.0, 0.1, f32_),
    ]);
    for l in 0..v.n_layer {
        for (name, dims, mean, std, dtype) in &block {
            let name = format!("v.blk.{l}.{name}");
            t.push(normal(rng, &name, dims, *mean, *std, *dtype)?);
        }
    }
    let h = shape.n_embd;
    t.push(normal(rng, "mm.0.weight", &[h, e], 0.0, inv(e), w)?);
    t.push(normal(rng, "mm.0.bias", &[h], 0.0, 0.1, f32_)?);
    t.push(normal(rng, "mm.2.weight", &[h, h], 0.0, 2.0 * inv(h), w)?);
    t.push(normal(rng, "mm.2.bias", &[h], 0.0, 0.1, f32_)?);
    Ok(t)
}
