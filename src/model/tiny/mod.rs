//! Generates random-weight LLaVA-style models deterministically from a seed,
//! without network: a LLaMA text GGUF with an SPM vocabulary that holds every
//! prompt word, a CLIP + MLP mmproj, and LoRA adapters. The tiny shape is for
//! tests; the bench shape is large enough that compute dominates as it does
//! with real weights. Their verdicts are meaningless by construction.

mod clip;
mod lora;
mod text;
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

    /// For GPU benchmarks: the shapes of LLaVA-1.5-7B (Vicuna-7B: hidden 4096,
    /// 32 layers, 32 heads, FFN 11008, 32 000 tokens) and of its CLIP ViT-L/14
    /// at 336 px (24 × 24 = 576 image tokens; 23 layers, as LLaVA's mmproj
    /// drops the last). 13.5 GB in F16: generate it where it is used.
    pub fn llava_7b() -> ModelShape {
        ModelShape {
            n_embd: 4096,
            n_layer: 32,
            n_head: 32,
            n_head_kv: 32,
            n_ff: 11008,
            n_ctx_train: 4096,
            vocab_size: 32000,
            dtype: GgmlDType::F16,
            vision: VisionShape {
                image_size: 336,
                patch_size: 14,
                n_embd: 1024,
                n_ff: 4096,
                n_layer: 23,
                n_head: 16,
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
        &text::text_metadata(shape, &vocab),
        &text::text_tensors(shape, vocab.tokens.len(), &mut rng)?,
    )?;
    write_gguf(
        &out.mmproj,
        &clip::clip_metadata(shape),
        &clip::clip_tensors(shape, &mut rng)?,
    )?;
    let answer = |word: &str| vocab.tokens.iter().position(|t| t == &format!("▁{word}"));
    let yes_no = answer("Yes").zip(answer("No"));
    for (i, path) in out.adapters.iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(1000 + i as u64));
        let tensors = lora::lora_tensors(shape, vocab.tokens.len(), yes_no, &mut rng)?;
        write_gguf(path, &lora::lora_metadata(shape), &tensors)?;
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
