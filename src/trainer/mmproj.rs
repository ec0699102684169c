//! The mmproj GGUF as a file: its metadata checked for the one projector
//! reproduced in candle (LLaVA-1.5's "mlp"), its tensors read as F32, and a
//! copy written with some tensors replaced (a trained projector).
//!
//! The copy is the original's bytes with only the replaced tensors' data
//! overwritten in place, each re-encoded in its original type: metadata,
//! tensor order, types, alignment and every other tensor are the original's
//! by construction, so llama.cpp reads the copy exactly as it reads the
//! original but for those weights.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

use super::TrainError;

fn file_err(path: &Path, e: &dyn std::fmt::Display) -> TrainError {
    TrainError::Io(format!("{}: {e}", path.display()))
}

/// The parsed header and the open file, for reading tensors.
pub(super) fn open(path: &Path) -> Result<(Content, File), TrainError> {
    let mut file = File::open(path).map_err(|e| file_err(path, &e))?;
    let content = Content::read(&mut file).map_err(|e| file_err(path, &e))?;
    Ok((content, file))
}

pub(super) fn meta<'a>(c: &'a Content, key: &str) -> Option<&'a Value> {
    c.metadata.get(key)
}

/// The projector type is LLaVA-1.5's "mlp", without the LLaVA-1.6 grid or
/// Granite feature layers (other preprocessing and graphs).
pub(super) fn check_mlp_projector(c: &Content) -> Result<(), TrainError> {
    let kind = ["clip.projector_type", "clip.vision.projector_type"]
        .iter()
        .find_map(|k| meta(c, k).and_then(|v| v.to_string().ok()).cloned())
        .unwrap_or_default();
    if kind != "mlp" {
        return Err(TrainError::Projector(format!(
            "projector type `{kind}` is not supported (only LLaVA-1.5's `mlp`)"
        )));
    }
    for key in [
        "clip.vision.image_grid_pinpoints",
        "clip.vision.feature_layer",
    ] {
        if meta(c, key).is_some() {
            return Err(TrainError::Projector(format!(
                "`{key}` (LLaVA-1.6 / Granite preprocessing) is not supported"
            )));
        }
    }
    Ok(())
}

/// Reads tensors from an open mmproj, dequantised to F32.
pub(super) struct Reader<'a> {
    pub content: &'a Content,
    pub file: &'a mut File,
    pub device: &'a Device,
}

impl Reader<'_> {
    /// The tensor and its storage type, or None if the file lacks it.
    pub fn opt(&mut self, name: &str) -> Result<Option<(Tensor, GgmlDType)>, TrainError> {
        if !self.content.tensor_infos.contains_key(name) {
            return Ok(None);
        }
        let q = self
            .content
            .tensor(self.file, name, self.device)
            .map_err(|e| TrainError::Io(format!("tensor {name}: {e}")))?;
        let dtype = q.dtype();
        Ok(Some((
            q.dequantize(self.device)?.to_dtype(DType::F32)?,
            dtype,
        )))
    }

    pub fn need(&mut self, name: &str) -> Result<(Tensor, GgmlDType), TrainError> {
        self.opt(name)?
            .ok_or_else(|| TrainError::Io(format!("tensor {name} missing from the mmproj")))
    }
}

/// Writes `out`: a copy of `original` whose tensors named in `replace` hold
/// the given values (same shapes; encoded in the original's type for each).
/// Atomic: a reader never sees half a file. Returns the copy's sha256.
pub fn write_replacing(
    original: &Path,
    out: &Path,
    replace: &[(String, Tensor)],
) -> Result<String, TrainError> {
    let (content, _) = open(original)?;
    let mut patches = Vec::with_capacity(replace.len());
    for (name, t) in replace {
        let info = content.tensor_infos.get(name).ok_or_else(|| {
            TrainError::Projector(format!("{name} is not in {}", original.display()))
        })?;
        if info.shape.dims() != t.dims() {
            return Err(TrainError::Projector(format!(
                "{name}: shape {:?} does not match the original's {:?}",
                t.dims(),
                info.shape.dims()
            )));
        }
        let t = t.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        let bytes = QTensor::quantize(&t, info.ggml_dtype)?.data()?.to_vec();
        let dtype = info.ggml_dtype;
        let expected = info.shape.elem_count() / dtype.block_size() * dtype.type_size();
        if bytes.len() != expected {
            return Err(TrainError::Projector(format!(
                "{name}: encoded {} bytes as {dtype:?}, the original holds {expected}",
                bytes.len()
            )));
        }
        patches.push((content.tensor_data_offset + info.offset, bytes));
    }
    crate::atomic::write_with(out, |file: &mut File| -> std::io::Result<()> {
        let mut src = File::open(original)?;
        std::io::copy(&mut src, file)?;
        for (at, bytes) in &patches {
            file.seek(SeekFrom::Start(*at))?;
            file.write_all(bytes)?;
        }
        Ok(())
    })
    .map_err(|e| file_err(out, &e))?;
    sha256(out)
}

/// Hex sha256 of an mmproj file (the registry names weights by it).
pub fn sha256(path: &Path) -> Result<String, TrainError> {
    crate::domain::digest::sha256_file(path).map_err(|e| file_err(path, &e))
}
