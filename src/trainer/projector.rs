//! LLaVA's MLP projector (mm.0 → GELU → mm.2, clip.cpp's "mlp") as
//! trainable candle Vars, initialised from the mmproj, and written back as a
//! new mmproj (`mmproj::write_replacing`) that llama.cpp serves.
//!
//! The weights train in F32; the forward rounds weights and inputs to the
//! file's storage type where it is F16/BF16, as llama.cpp computes with the
//! written file, with the gradient passed straight through the rounding.

use std::path::Path;

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor, Var};

use super::ggml_cpu::{ggml_gelu, round_to};
use super::mmproj::{self, check_mlp_projector, Reader};
use super::{ImageEmbedding, TowerFeatures, TrainError};

/// The projector's tensors, in the order clip.cpp applies them.
pub const PROJECTOR_TENSORS: [&str; 4] = ["mm.0.weight", "mm.0.bias", "mm.2.weight", "mm.2.bias"];

struct Layer {
    /// (out, in), as stored.
    w: Var,
    b: Var,
    w_dtype: GgmlDType,
}

impl Layer {
    fn forward(&self, x: &Tensor) -> Result<Tensor, TrainError> {
        let w = round_to(self.w.as_tensor(), self.w_dtype)?;
        // ggml converts the input to the weight's dot-product type.
        let x = round_to(x, self.w_dtype)?;
        Ok(x.matmul(&w.t()?)?.broadcast_add(self.b.as_tensor())?)
    }
}

/// The trainable projector: mm.0 (vision width → LLM width) and mm.2.
pub struct ProjectorSet {
    mm0: Layer,
    mm2: Layer,
}

impl ProjectorSet {
    /// The projector of an mmproj, as trainable F32 copies.
    pub fn from_mmproj(path: &Path, device: &Device) -> Result<ProjectorSet, TrainError> {
        let (content, mut file) = mmproj::open(path)?;
        check_mlp_projector(&content)?;
        let mut r = Reader {
            content: &content,
            file: &mut file,
            device,
        };
        let mut layer = |i: usize| -> Result<Layer, TrainError> {
            let (w, w_dtype) = r.need(&format!("mm.{i}.weight"))?;
            let (b, _) = r.need(&format!("mm.{i}.bias"))?;
            Ok(Layer {
                w: Var::from_tensor(&w)?,
                b: Var::from_tensor(&b)?,
                w_dtype,
            })
        };
        let (mm0, mm2) = (layer(0)?, layer(2)?);
        let (h0, _) = mm0.w.as_tensor().dims2()?;
        let (h2, in2) = mm2.w.as_tensor().dims2()?;
        if in2 != h0 || mm0.b.as_tensor().dims() != [h0] || mm2.b.as_tensor().dims() != [h2] {
            return Err(TrainError::Projector(format!(
                "{}: mm.0/mm.2 shapes do not chain",
                path.display()
            )));
        }
        Ok(ProjectorSet { mm0, mm2 })
    }

    /// Width of the tower features it takes.
    pub fn in_dim(&self) -> usize {
        self.mm0.w.as_tensor().dims()[1]
    }

    /// Width of the embeddings it gives (the LLM's).
    pub fn out_dim(&self) -> usize {
        self.mm2.w.as_tensor().dims()[0]
    }

    pub fn vars(&self) -> Vec<Var> {
        [&self.mm0, &self.mm2]
            .into_iter()
            .flat_map(|l| [l.w.clone(), l.b.clone()])
            .collect()
    }

    /// (GGUF name, a copy of the current F32 values), in `PROJECTOR_TENSORS`
    /// order. Copies: the optimizer updates the Vars in place.
    pub fn named_tensors(&self) -> Result<Vec<(String, Tensor)>, TrainError> {
        let vars = self.vars();
        PROJECTOR_TENSORS
            .iter()
            .zip(vars)
            .map(|(name, v)| Ok((name.to_string(), v.as_tensor().copy()?)))
            .collect()
    }

    /// Tower features (n, in_dim) → image embeddings (n, out_dim), as
    /// clip.cpp's "mlp" projector: mm.0, GELU, mm.2.
    pub fn forward(&self, features: &Tensor) -> Result<Tensor, TrainError> {
        let (_, width) = features.dims2()?;
        if width != self.in_dim() {
            return Err(TrainError::Projector(format!(
                "features are {width} wide, the projector takes {}",
                self.in_dim()
            )));
        }
        let h = ggml_gelu(&self.mm0.forward(features)?)?;
        self.mm2.forward(&h)
    }

    /// One image's embeddings, in the form llama.cpp's encoder returns them.
    pub fn project(&self, features: &TowerFeatures) -> Result<ImageEmbedding, TrainError> {
        let device = self.mm0.w.as_tensor().device().clone();
        let out = self.forward(&features.tensor(&device)?)?;
        let (n_tokens, n_embd) = out.dims2()?;
        Ok(ImageEmbedding {
            n_tokens,
            n_embd,
            data: out.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
        })
    }

    /// Writes `out`: `original` (the mmproj this projector was loaded from)
    /// with mm.0/mm.2 replaced by the current weights, same metadata, tensor
    /// order and types. Returns the new file's sha256.
    pub fn write_mmproj(&self, original: &Path, out: &Path) -> Result<String, TrainError> {
        mmproj::write_replacing(original, out, &self.named_tensors()?)
    }
}

#[cfg(test)]
mod tests;
