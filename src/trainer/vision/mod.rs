//! The frozen CLIP vision tower of a LLaVA mmproj, in candle: an image's
//! features before the projector, as llama.cpp's mtmd computes them, so the
//! projector can be trained on what serving feeds it.
//!
//! Written with candle ops rather than candle-transformers' CLIP model,
//! because that model cannot reproduce llama.cpp's llava graph
//! (tools/mtmd/models/llava.cpp), which serving runs:
//! - the class token is concatenated *after* the patches, while positions
//!   stay 0..n and the output rows taken are 1..=n_patches; so each patch
//!   gets its neighbour's position embedding, patch 0 is dropped and the
//!   class token is the last image token (llama.cpp issue #25814). Training
//!   must see what serving sees, so this is reproduced on purpose;
//! - only the first `block_count − 1` layers run (LLaVA's "second to last
//!   layer"), then `post_ln` if the file has one;
//! - the FFN activation follows `clip.use_gelu` / `clip.use_silu` (else
//!   quick-GELU), with ggml's CPU GELU (an F16 table, `ggml_gelu`);
//! - F16 rounding where ggml's CPU kernels round: the patch convolution's
//!   im2col (pixels), activations multiplied by F16 weights, and K/V in the
//!   tower's flash attention (on by default in mtmd on CPU).

use std::path::Path;

use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};
use candle_nn::ops::{layer_norm, softmax_last_dim};

use super::clip_image::{normalize, resize_pad, PAD_COLOR};
use super::ggml_cpu::{ggml_gelu, ggml_gelu_quick, round_f16};
use super::mmproj::{self, check_mlp_projector, Reader};
use super::{TowerFeatures, TrainError};
use crate::intake::DecodedImage;

mod config;

pub use config::{Activation, VisionConfig};

/// `x · Wᵀ + b` with W stored (in, out) and ggml's input rounding.
struct Linear {
    w: Tensor,
    b: Option<Tensor>,
    /// The weight was F16 in the file: ggml converts the input to F16.
    round_input: bool,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor, TrainError> {
        let x = if self.round_input {
            round_f16(x)?
        } else {
            x.clone()
        };
        let y = x.matmul(&self.w)?;
        Ok(match &self.b {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

struct Norm {
    w: Tensor,
    b: Tensor,
}

struct Block {
    ln1: Norm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ln2: Norm,
    up: Linear,
    down: Linear,
}

pub struct VisionTower {
    pub config: VisionConfig,
    device: Device,
    /// (3·p·p, E): the patch convolution as a matrix over flattened patches.
    patch: Linear,
    class: Option<Tensor>,
    position: Tensor,
    pre_ln: Option<Norm>,
    post_ln: Option<Norm>,
    blocks: Vec<Block>,
}

/// The tower's tensor shapes on top of `mmproj::Reader`.
trait TowerReader {
    fn linear(&mut self, prefix: &str) -> Result<Linear, TrainError>;
    fn norm(&mut self, prefix: &str, e: usize) -> Result<Option<Norm>, TrainError>;
}

impl TowerReader for Reader<'_> {
    /// A weight stored (out, in) in the file, kept (in, out) for one matmul.
    fn linear(&mut self, prefix: &str) -> Result<Linear, TrainError> {
        let (w, dtype) = self.need(&format!("{prefix}.weight"))?;
        Ok(Linear {
            w: w.t()?.contiguous()?,
            b: self.opt(&format!("{prefix}.bias"))?.map(|t| t.0),
            round_input: dtype == GgmlDType::F16,
        })
    }

    /// A layer norm; either half may be absent (ggml then skips it).
    fn norm(&mut self, prefix: &str, e: usize) -> Result<Option<Norm>, TrainError> {
        let w = self.opt(&format!("{prefix}.weight"))?.map(|t| t.0);
        let b = self.opt(&format!("{prefix}.bias"))?.map(|t| t.0);
        Ok(match (w, b) {
            (None, None) => None,
            (w, b) => Some(Norm {
                w: w.map_or_else(|| Tensor::ones(e, DType::F32, self.device), Ok)?,
                b: b.map_or_else(|| Tensor::zeros(e, DType::F32, self.device), Ok)?,
            }),
        })
    }
}

impl VisionTower {
    pub fn load(mmproj: &Path, device: &Device) -> Result<VisionTower, TrainError> {
        let (content, mut file) = mmproj::open(mmproj)?;
        check_mlp_projector(&content)?;
        let config = VisionConfig::from_metadata(&content)?;
        let mut r = Reader {
            content: &content,
            file: &mut file,
            device,
        };
        let (e, p) = (config.n_embd, config.patch_size);
        let (kernel, kernel_dtype) = r.need("v.patch_embd.weight")?;
        if kernel.dims() != [e, 3, p, p] {
            return Err(TrainError::Vision(format!(
                "patch kernel {:?}, expected [{e}, 3, {p}, {p}]",
                kernel.dims()
            )));
        }
        // ggml's conv_2d runs im2col in F16 (in F32 for a BF16 kernel), so
        // pixels and kernel are rounded to F16 before the product.
        let f16_conv = kernel_dtype != GgmlDType::BF16;
        let kernel = kernel.reshape((e, 3 * p * p))?.t()?.contiguous()?;
        let patch = Linear {
            w: if f16_conv {
                round_f16(&kernel)?
            } else {
                kernel
            },
            b: r.opt("v.patch_embd.bias")?.map(|t| t.0),
            round_input: f16_conv,
        };
        let class = r
            .opt("v.class_embd")?
            .map(|t| t.0.reshape((1, e)))
            .transpose()?;
        let (position, _) = r.need("v.position_embd.weight")?;
        let pre_ln = r.norm("v.pre_ln", e)?;
        let post_ln = r.norm("v.post_ln", e)?;
        let mut blocks = Vec::new();
        // The llava graph runs the layers before the last one only.
        for l in 0..config.n_layer - 1 {
            let missing = || TrainError::Vision(format!("layer {l}: layer norm missing"));
            blocks.push(Block {
                ln1: r.norm(&format!("v.blk.{l}.ln1"), e)?.ok_or_else(missing)?,
                q: r.linear(&format!("v.blk.{l}.attn_q"))?,
                k: r.linear(&format!("v.blk.{l}.attn_k"))?,
                v: r.linear(&format!("v.blk.{l}.attn_v"))?,
                o: r.linear(&format!("v.blk.{l}.attn_out"))?,
                ln2: r.norm(&format!("v.blk.{l}.ln2"), e)?.ok_or_else(missing)?,
                up: r.linear(&format!("v.blk.{l}.ffn_up"))?,
                down: r.linear(&format!("v.blk.{l}.ffn_down"))?,
            });
        }
        let n_pos = config.n_patches() + usize::from(class.is_some());
        if position.dims() != [n_pos, e] {
            return Err(TrainError::Vision(format!(
                "position embeddings {:?}, expected [{n_pos}, {e}]",
                position.dims()
            )));
        }
        Ok(VisionTower {
            config,
            device: device.clone(),
            patch,
            class,
            position,
            pre_ln,
            post_ln,
            blocks,
        })
    }

    /// The image as mtmd preprocesses it: (n_patches, 3·p·p), each row one
    /// patch's (channel, y, x) values, patches in row-major order.
    pub fn patches(&self, image: &DecodedImage) -> Result<Tensor, TrainError> {
        let c = &self.config;
        let (w, h) = (image.width() as usize, image.height() as usize);
        if w == 0 || h == 0 || image.rgb().len() != w * h * 3 {
            return Err(TrainError::Vision(format!("malformed {w}x{h} image")));
        }
        let (s, p) = (c.image_size, c.patch_size);
        let pixels = normalize(&resize_pad(image.rgb(), w, h, s, PAD_COLOR), c.mean, c.std);
        let planar = Tensor::from_vec(pixels, (3, s / p, p, s / p, p), &self.device)?;
        // (c, py, ky, px, kx) → (py, px, c, ky, kx)
        let rows = planar.permute((1, 3, 0, 2, 4))?.contiguous()?;
        Ok(rows.reshape((c.n_patches(), 3 * p * p))?)
    }

    /// The tower's output before the projector, (n_patches, E).
    pub fn forward(&self, patches: &Tensor) -> Result<Tensor, TrainError> {
        let c = &self.config;
        let mut x = self.patch.forward(patches)?;
        if let Some(class) = &self.class {
            x = Tensor::cat(&[&x, class], 0)?;
        }
        x = (x + &self.position)?;
        if let Some(n) = &self.pre_ln {
            x = layer_norm(&x, &n.w, &n.b, c.eps)?;
        }
        for block in &self.blocks {
            x = self.block(block, x)?;
        }
        if let Some(n) = &self.post_ln {
            x = layer_norm(&x, &n.w, &n.b, c.eps)?;
        }
        let first = usize::from(self.class.is_some());
        Ok(x.narrow(0, first, c.n_patches())?.contiguous()?)
    }

    fn block(&self, b: &Block, x: Tensor) -> Result<Tensor, TrainError> {
        let c = &self.config;
        let (n, e) = x.dims2()?;
        let hd = e / c.n_head;
        let h = layer_norm(&x, &b.ln1.w, &b.ln1.b, c.eps)?;
        let heads = |t: Tensor| -> Result<Tensor, TrainError> {
            Ok(t.reshape((n, c.n_head, hd))?
                .transpose(0, 1)?
                .contiguous()?)
        };
        let q = heads(b.q.forward(&h)?)?;
        let k = round_f16(&heads(b.k.forward(&h)?)?)?;
        let v = round_f16(&heads(b.v.forward(&h)?)?)?;
        let scores = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?;
        let att = softmax_last_dim(&scores)?
            .matmul(&v)?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((n, e))?;
        let x = (x + b.o.forward(&att)?)?;
        let h = b.up.forward(&layer_norm(&x, &b.ln2.w, &b.ln2.b, c.eps)?)?;
        let h = match c.activation {
            Activation::Gelu => ggml_gelu(&h)?,
            Activation::GeluQuick => ggml_gelu_quick(&h)?,
            Activation::Silu => h.silu()?,
        };
        Ok((x + b.down.forward(&h)?)?)
    }

    /// An image's pre-projector features, as the projector receives them
    /// in llama.cpp.
    pub fn features(&self, image: &DecodedImage) -> Result<TowerFeatures, TrainError> {
        let out = self.forward(&self.patches(image)?)?;
        let (n_tokens, n_embd) = out.dims2()?;
        Ok(TowerFeatures {
            n_tokens,
            n_embd,
            data: out.flatten_all()?.to_vec1()?,
        })
    }
}
