//! Writing GGUF files (generated models, trained and imported adapters)
//! atomically: to a temporary name, synced, then renamed, so a reader (a
//! worker loading an adapter) never sees half a file.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::QTensor;

#[derive(Debug, thiserror::Error)]
pub enum GgufWriteError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode {path}: {source}")]
    Encode {
        path: PathBuf,
        source: candle_core::Error,
    },
}

/// The path is filled in by `write_atomic`, which knows it.
impl From<std::io::Error> for GgufWriteError {
    fn from(source: std::io::Error) -> Self {
        GgufWriteError::Io {
            path: PathBuf::new(),
            source,
        }
    }
}

pub fn write_atomic(
    path: &Path,
    meta: &[(String, Value)],
    tensors: &[(String, QTensor)],
) -> Result<(), GgufWriteError> {
    let io = |source| GgufWriteError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    crate::atomic::write_with(path, |file| {
        let mut w = BufWriter::new(file);
        gguf_file::write(&mut w, &meta_refs, &tensor_refs).map_err(|source| {
            GgufWriteError::Encode {
                path: path.to_path_buf(),
                source,
            }
        })?;
        w.flush().map_err(io)
    })
    .map_err(|e| match e {
        GgufWriteError::Io { source, .. } => io(source),
        other => other,
    })
}
