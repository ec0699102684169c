//! The vision tower's hyper-parameters, read from the mmproj's metadata as
//! clip.cpp reads them, refusing what the candle tower does not reproduce.

use candle_core::quantized::gguf_file::Content;

use crate::trainer::mmproj::meta;
use crate::trainer::TrainError;

/// The FFN activation clip.cpp picks from the mmproj's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Gelu,
    GeluQuick,
    Silu,
}

/// The tower's hyper-parameters, from the mmproj's `clip.vision.*` metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    pub image_size: usize,
    pub patch_size: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_layer: usize,
    pub eps: f32,
    pub activation: Activation,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

fn meta_usize(c: &Content, key: &str) -> Result<usize, TrainError> {
    meta(c, key)
        .and_then(|v| v.to_u32().ok())
        .map(|v| v as usize)
        .ok_or_else(|| TrainError::Vision(format!("metadata `{key}` missing or not an integer")))
}

fn meta_bool(c: &Content, key: &str) -> bool {
    meta(c, key).and_then(|v| v.to_bool().ok()).unwrap_or(false)
}

fn meta_f32x3(c: &Content, key: &str) -> Result<[f32; 3], TrainError> {
    let bad = || TrainError::Vision(format!("metadata `{key}` missing or not 3 floats"));
    let arr = meta(c, key).and_then(|v| v.to_vec().ok()).ok_or_else(bad)?;
    let vals: Vec<f32> = arr.iter().filter_map(|v| v.to_f32().ok()).collect();
    match vals.as_slice() {
        [a, b, c, ..] => Ok([*a, *b, *c]),
        _ => Err(bad()),
    }
}

impl VisionConfig {
    pub fn n_patches(&self) -> usize {
        (self.image_size / self.patch_size).pow(2)
    }

    /// From an mmproj's header (metadata and tensor table).
    pub fn from_metadata(c: &Content) -> Result<VisionConfig, TrainError> {
        let activation = match (meta_bool(c, "clip.use_gelu"), meta_bool(c, "clip.use_silu")) {
            (true, true) => return Err(TrainError::Vision("both use_gelu and use_silu".into())),
            (true, false) => Activation::Gelu,
            (false, true) => Activation::Silu,
            (false, false) => Activation::GeluQuick,
        };
        let config = VisionConfig {
            image_size: meta_usize(c, "clip.vision.image_size")?,
            patch_size: meta_usize(c, "clip.vision.patch_size")?,
            n_embd: meta_usize(c, "clip.vision.embedding_length")?,
            n_head: meta_usize(c, "clip.vision.attention.head_count")?,
            n_layer: meta_usize(c, "clip.vision.block_count")?,
            eps: meta(c, "clip.vision.attention.layer_norm_epsilon")
                .and_then(|v| v.to_f32().ok())
                .unwrap_or(1e-6),
            activation,
            mean: meta_f32x3(c, "clip.vision.image_mean")?,
            std: meta_f32x3(c, "clip.vision.image_std")?,
        };
        if config.patch_size == 0
            || !config.image_size.is_multiple_of(config.patch_size)
            || config.n_head == 0
            || !config.n_embd.is_multiple_of(config.n_head)
            || config.n_layer == 0
        {
            return Err(TrainError::Vision(format!("inconsistent shape {config:?}")));
        }
        // What the llava graph would use but this tower does not reproduce.
        let head_dim = meta(c, "clip.vision.attention.head_dim").and_then(|v| v.to_u32().ok());
        if head_dim.is_some_and(|d| d as usize * config.n_head != config.n_embd) {
            return Err(TrainError::Vision("a Q/K/V width other than n_embd".into()));
        }
        for name in ["v.blk.0.ffn_gate.weight", "v.blk.0.attn_qkv.weight"] {
            if c.tensor_infos.contains_key(name) {
                return Err(TrainError::Vision(format!("{name} is not supported")));
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use candle_core::quantized::gguf_file::{self, Value};

    use super::*;

    /// A header-only GGUF with LLaVA-1.5-like vision metadata, `extra` over it.
    fn header(extra: &[(&str, Value)]) -> Content {
        let f3 = |x: f32| Value::Array(vec![Value::F32(x); 3]);
        let mut meta = vec![
            ("clip.projector_type", Value::String("mlp".into())),
            ("clip.vision.image_size", Value::U32(336)),
            ("clip.vision.patch_size", Value::U32(14)),
            ("clip.vision.embedding_length", Value::U32(1024)),
            ("clip.vision.attention.head_count", Value::U32(16)),
            ("clip.vision.block_count", Value::U32(23)),
            ("clip.vision.image_mean", f3(0.48)),
            ("clip.vision.image_std", f3(0.27)),
        ];
        meta.retain(|(k, _)| extra.iter().all(|(e, _)| e != k));
        meta.extend(extra.iter().cloned());
        let refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
        let mut bytes = Cursor::new(Vec::new());
        gguf_file::write(&mut bytes, &refs, &[]).unwrap();
        bytes.set_position(0);
        Content::read(&mut bytes).unwrap()
    }

    #[test]
    fn reads_llava_metadata_with_clip_cpp_defaults() {
        let c = VisionConfig::from_metadata(&header(&[])).unwrap();
        assert_eq!(c.n_patches(), 576);
        assert_eq!(
            c.activation,
            Activation::GeluQuick,
            "no use_gelu: quick GELU"
        );
        assert_eq!(c.eps, 1e-6, "clip.cpp's default epsilon");
        assert_eq!(c.mean, [0.48; 3]);
        let gelu = header(&[
            ("clip.use_gelu", Value::Bool(true)),
            ("clip.vision.attention.layer_norm_epsilon", Value::F32(1e-5)),
        ]);
        let c = VisionConfig::from_metadata(&gelu).unwrap();
        assert_eq!((c.activation, c.eps), (Activation::Gelu, 1e-5));
    }

    #[test]
    fn refuses_what_the_tower_does_not_reproduce() {
        let cases: [&[(&str, Value)]; 3] = [
            &[
                ("clip.use_gelu", Value::Bool(true)),
                ("clip.use_silu", Value::Bool(true)),
            ],
            &[("clip.vision.patch_size", Value::U32(15))],
            &[("clip.vision.attention.head_dim", Value::U32(32))],
        ];
        for extra in cases {
            let err = VisionConfig::from_metadata(&header(extra));
            assert!(err.is_err(), "{extra:?} accepted");
        }
    }
}
