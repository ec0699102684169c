//! Generates random-weight LLaVA-style models deterministically from a seed,
//! without network: a LLaMA text GGUF with an SPM vocabulary that holds every
//! prompt word, a CLIP + MLP mmproj, and LoRA adapters. The tiny shape is for
//! tests; the bench shape is large enough that compute dominates as it does
//! with real weights. Their verdicts are meaningless by construction.

mod vocab;

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

pub use vocab::{build_vocabulary, Vocabulary, ANSWER_CORPUS};

#[derive(Debug, Clone)]
pub struct VisionShape {
    pub image_size: u32,
    pub patch_size: u32,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_layer: usize,
    pub n_head: u32,
}

#[derive(Debug, Clone)]
pub struct ModelShape {
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: u32,
    pub n_head_kv: u32,
    pub n_ff: usize,
    pub n_ctx_train: u32,
    /// Pad the vocabulary with unused tokens to this size (0: no padding).
    pub vocab_size: usize,
    /// Storage type of the 2-D weights.
    pub dtype: GgmlDType,
    pub vision: VisionShape,
    pub lora_rank: usize,
}

impl ModelShape {
    /// For tests: loads in milliseconds, 16 image tokens.
    pub fn tiny() -> ModelShape {
        ModelShape {
            n_embd: 64,
            n_layer: 2,
            n_head: 4,
            n_head_kv: 2,
            n_ff: 160,
            n_ctx_train: 4096,
            vocab_size: 0,
            dtype: GgmlDType::F32,
            vision: VisionShape {
                image_size: 32,
                patch_size: 8,
                n_embd: 48,
                n_ff: 96,
                n_layer: 3,
                n_head: 4,
            },
            lora_rank: 4,
        }
    }

    /// For benchmarks: hidden 1024, 8 layers, a 32 000-token vocabulary and a
    /// 224-px / patch-14 vision tower giving 256 image tokens.
    pub fn bench() -> ModelShape {
        ModelShape {
            n_embd: 1024,
            n_layer: 8,
            n_head: 16,
            n_head_kv: 16,
            n_ff: 2816,
            n_ctx_train: 4096,
            vocab_size: 32000,
            dtype: GgmlDType::F16,
            vision: VisionShape {
                image_size: 224,
                patch_size: 14,
                n_embd: 384,
                n_ff: 1536,
                n_layer: 4,
                n_head: 6,
            },
            lora_rank: 16,
        }
    }
}

/// The files a generation run writes.
#[derive(Debug, Clone)]
pub struct GeneratedModel {
    pub gguf: PathBuf,
    pub mmproj: PathBuf,
    /// Two adapters from different seeds; both move the detection answer.
    pub adapters: [PathBuf; 2],
}

impl GeneratedModel {
    /// The paths a generation into `dir` writes.
    pub fn in_dir(dir: &Path) -> GeneratedModel {
        GeneratedModel {
            gguf: dir.join("model.gguf"),
            mmproj: dir.join("mmproj.gguf"),
            adapters: [dir.join("lora-a.gguf"), dir.join("lora-b.gguf")],
        }
    }

    pub fn exists(&self) -> bool {
        self.gguf.is_file() && self.mmproj.is_file() && self.adapters.iter().all(|a| a.is_file())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot build tensor {name}: {source}")]
    Tensor {
        name: String,
        source: candle_core::Error,
    },
    #[error(transparent)]
    Write(#[from] crate::model::gguf_write::GgufWriteError),
}

/// Writes model, mmproj and adapters into `dir`; the same seed and texts give
/// byte-identical files.
pub fn generate(
    dir: &Path,
    shape: &ModelShape,
    texts: &[&str],
    seed: u64,
) -> Result<GeneratedModel, GenerateError> {
    std::fs::create_dir_all(dir).map_err(|source| GenerateError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let out = GeneratedModel::in_dir(dir);
    let mut all_texts: Vec<&str> = texts.to_vec();
    all_texts.push(ANSWER_CORPUS);
    let vocab = build_vocabulary(&all_texts, shape.vocab_size);

    // Write to temporary names and rename: a reader never sees half a model.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    write_gguf(
        &out.gguf,
        &text_metadata(shape, &vocab),
        &text_tensors(shape, vocab.tokens.len(), &mut rng)?,
    )?;
    write_gguf(
        &out.mmproj,
        &clip_metadata(shape),
        &clip_tensors(shape, &mut rng)?,
    )?;
    let answer = |word: &str| vocab.tokens.iter().position(|t| t == &format!("▁{word}"));
    let yes_no = answer("Yes").zip(answer("No"));
    for (i, path) in out.adapters.iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(1000 + i as u64));
        let tensors = lora_tensors(shape, vocab.tokens.len(), yes_no, &mut rng)?;
        write_gguf(path, &lora_metadata(shape), &tensors)?;
    }
    Ok(out)
}

type Meta = Vec<(String, Value)>;
type Tensors = Vec<(String, QTensor)>;

fn write_gguf(path: &Path, meta: &Meta, tensors: &Tensors) -> Result<(), GenerateError> {
    Ok(crate::model::gguf_write::write_atomic(path, meta, tensors)?)
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn u(v: usize) -> Value {
    Value::U32(v as u32)
}

fn text_metadata(shape: &ModelShape, vocab: &Vocabulary) -> Meta {
    let head_dim = shape.n_embd / shape.n_head as usize;
    vec![
        ("general.architecture".into(), s("llama")),
        ("general.name".into(), s("dfa-generated-random")),
        ("llama.context_length".into(), Value::U32(shape.n_ctx_train)),
        ("llama.embedding_length".into(), u(shape.n_embd)),
        ("llama.block_count".into(), u(shape.n_layer)),
        ("llama.feed_forward_length".into(), u(shape.n_ff)),
        (
            "llama.attention.head_count".into(),
            Value::U32(shape.n_head),
        ),
        (
            "llama.attention.head_count_kv".into(),
            Value::U32(shape.n_head_kv),
        ),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(1e-5),
        ),
        ("llama.rope.dimension_count".into(), u(head_dim)),
        ("llama.rope.freq_base".into(), Value::F32(10000.0)),
        ("tokenizer.ggml.model".into(), s("llama")),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(vocab.tokens.iter().map(|t| s(t)).collect()),
        ),
        (
            "tokenizer.ggml.scores".into(),
            Value::Array(vocab.scores.iter().map(|&x| Value::F32(x)).collect()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(vocab.types.iter().map(|&t| Value::I32(t as i32)).collect()),
        ),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(vocab::BOS)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(vocab::EOS)),
        (
            "tokenizer.ggml.unknown_token_id".into(),
            Value::U32(vocab::UNK),
        ),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(true)),
        ("tokenizer.ggml.add_eos_token".into(), Value::Bool(false)),
    ]
}

/// Draws a tensor of normal values with standard deviation `std` (plus `mean`).
fn normal(
    rng: &mut ChaCha8Rng,
    name: &str,
    dims: &[usize],
    mean: f32,
    std: f32,
    dtype: GgmlDType,
) -> Result<(String, QTensor), GenerateError> {
    let n: usize = dims.iter().product();
    let data: Vec<f32> = (0..n)
        .map(|_| {
            let z: f32 = StandardNormal.sample(rng);
            mean + std * z
        })
        .collect();
    let wrap = |source| GenerateError::Tensor {
        name: name.to_string(),
        source,
    };
    let t = Tensor::from_vec(data, dims, &Device::Cpu).map_err(wrap)?;
    // Norms, biases and embeddings of rank 1 stay F32, as llama.cpp expects.
    let dtype = if dims.len() == 1 {
        GgmlDType::F32
    } else {
        dtype
    };
    let q = QTensor::quantize(&t, dtype).map_err(wrap)?;
    Ok((name.to_string(), q))
}

fn text_tensors(
    shape: &ModelShape,
    n_vocab: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Tensors, GenerateError> {
    let e = shape.n_embd;
    let kv = e / shape.n_head as usize * shape.n_head_kv as usize;
    let w = shape.dtype;
    let inv = |n: usize| 1.0 / (n as f32).sqrt();
    let mut t = vec![normal(
        rng,
        "token_embd.weight",
        &[n_vocab, e],
        0.0,
        1.0,
        w,
    )?];
    for l in 0..shape.n_layer {
        let p = format!("blk.{l}");
        t.push(normal(
            rng,
            &format!("{p}.attn_norm.weight"),
            &[e],
            1.0,
            0.1,
            w,
        )?);
        t.push(normal(
            rng,
            &format!("{p}.attn_q.weight"),
            &[e, e],
            0.0,
            inv(e),
            w,
        )?);
        t.push(normal(
            rng,
            &format!("{p}.attn_k.weight"),
            &[kv, e],
            0.0,
            inv(e),
            w,
        )?);
        t.push(normal(
            rng,
            &format!("{p}.attn_v.weight"),
            &[kv, e],
            0.0,
            inv(e),
            w,
        )?);
        t.push(normal(
            rng,
            &format!("{p}.attn_output.weight"),
            &[e, e],
            0.0,
            inv(e),
            w,
        )?);
        t.push(normal(
            rng,
            &format!("{p}.ffn_norm.weight"),
            &[e],
            1.0,
            0.1,
            w,
        )?);
        t.push(normal(
            rng,
            &format!("{p}.ffn_gate.weight"),
            &[shape.n_ff, e],
            0.0,
            inv(e),
            w,
        )?);
        t.push(normal(
            rng,
            &format!("{p}.ffn_up.weight"),
            &[shape.n_ff, e],
            0.0,
            inv(e),
            w,
        )?);
        t.push(normal(
            rng,
            &format!("{p}.ffn_down.weight"),
            &[e, shape.n_ff],
            0.0,
            inv(shape.n_ff),
            w,
        )?);
    }
    t.push(normal(rng, "output_norm.weight", &[e], 1.0, 0.1, w)?);
    // Logits with a standard deviation of ~3 so answers differ visibly.
    t.push(normal(
        rng,
        "output.weight",
        &[n_vocab, e],
        0.0,
        3.0 * inv(e),
        w,
    )?);
    Ok(t)
}

fn clip_metadata(shape: &ModelShape) -> Meta {
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

fn clip_tensors(shape: &ModelShape, rng: &mut ChaCha8Rng) -> Result<Tensors, GenerateError> {
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
    for l in 0..v.n_layer {
        let b = format!("v.blk.{l}");
        for name in ["attn_q", "attn_k", "attn_v", "attn_out"] {
            t.push(normal(
                rng,
                &format!("{b}.{name}.weight"),
                &[e, e],
                0.0,
                inv(e),
                w,
            )?);
            t.push(normal(
                rng,
                &format!("{b}.{name}.bias"),
                &[e],
                0.0,
                0.1,
                f32_,
            )?);
        }
        for name in ["ln1", "ln2"] {
            t.push(normal(
                rng,
                &format!("{b}.{name}.weight"),
                &[e],
                1.0,
                0.1,
                f32_,
            )?);
            t.push(normal(
                rng,
                &format!("{b}.{name}.bias"),
                &[e],
                0.0,
                0.1,
                f32_,
            )?);
        }
        t.push(normal(
            rng,
            &format!("{b}.ffn_up.weight"),
            &[v.n_ff, e],
            0.0,
            inv(e),
            w,
        )?);
        t.push(normal(
            rng,
            &format!("{b}.ffn_up.bias"),
            &[v.n_ff],
            0.0,
            0.1,
            f32_,
        )?);
        t.push(normal(
            rng,
            &format!("{b}.ffn_down.weight"),
            &[e, v.n_ff],
            0.0,
            inv(v.n_ff),
            w,
        )?);
        t.push(normal(
            rng,
            &format!("{b}.ffn_down.bias"),
            &[e],
            0.0,
            0.1,
            f32_,
        )?);
    }
    let h = shape.n_embd;
    t.push(normal(rng, "mm.0.weight", &[h, e], 0.0, inv(e), w)?);
    t.push(normal(rng, "mm.0.bias", &[h], 0.0, 0.1, f32_)?);
    t.push(normal(rng, "mm.2.weight", &[h, h], 0.0, 2.0 * inv(h), w)?);
    t.push(normal(rng, "mm.2.bias", &[h], 0.0, 0.1, f32_)?);
    Ok(t)
}

/// LoRA metadata: alpha equal to the rank, so a scale of 1 applies B·A as is.
fn lora_metadata(shape: &ModelShape) -> Meta {
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
fn lora_tensors(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let texts = ["Has this face been forged?"];
        let ga = generate(a.path(), &ModelShape::tiny(), &texts, 7).unwrap();
        let gb = generate(b.path(), &ModelShape::tiny(), &texts, 7).unwrap();
        assert!(ga.exists());
        for (x, y) in [
            (&ga.gguf, &gb.gguf),
            (&ga.mmproj, &gb.mmproj),
            (&ga.adapters[0], &gb.adapters[0]),
        ] {
            assert_eq!(
                std::fs::read(x).unwrap(),
                std::fs::read(y).unwrap(),
                "{x:?}"
            );
        }
        let other = tempfile::tempdir().unwrap();
        let gc = generate(other.path(), &ModelShape::tiny(), &texts, 8).unwrap();
        assert_ne!(
            std::fs::read(&ga.gguf).unwrap(),
            std::fs::read(&gc.gguf).unwrap()
        );
    }
}
