//! `dfa lora import`: a PEFT LoRA trained elsewhere becomes a GGUF adapter in
//! the adapter store and a `candidate` in the registry, once llama.cpp has
//! shown it can apply it to the configured base model.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use super::register::{register, AdapterId, Registration};
use crate::domain::adapter::AdapterOrigin;
use crate::domain::sha256_file;
use crate::model::files::ModelFiles;
use crate::settings::Settings;
use crate::store::Store;
use crate::trainer::adapter_file::write_adapter;
use crate::trainer::featurize::check_adapter;
use crate::trainer::peft::{read_peft, ImportedAdapter};

/// A registered import.
#[derive(Debug, Clone)]
pub struct Imported {
    pub id: String,
    /// The adapter file in the adapter store.
    pub path: PathBuf,
}

/// An imported adapter's `training_data` column: where it came from. It has
/// no retrain watermark (see `learning::record`), so the next retrain learns
/// from every standing correction.
#[derive(Debug, Clone, Serialize)]
pub struct ImportedFrom<'a> {
    pub imported_from: &'a Path,
}

/// An imported adapter's `hyper_parameters` column: its shape as read from
/// the PEFT files.
#[derive(Debug, Clone, Serialize)]
pub struct ImportedShape {
    pub rank: usize,
    pub alpha: f32,
    pub tensors: usize,
}

/// Converts the PEFT adapter in `dir`, checks it with llama.cpp against
/// `model`, and registers it as a candidate named `id` (default: the
/// directory's name).
pub async fn import_peft(
    settings: &Settings,
    model: &ModelFiles,
    dir: &Path,
    id: Option<String>,
) -> anyhow::Result<Imported> {
    let peft_dir = dir.to_path_buf();
    let adapter = tokio::task::spawn_blocking(move || read_peft(&peft_dir)).await??;
    let id = import_id(dir, id)?;
    let store = Store::open(&settings.database, 1)
        .await
        .context("opening the database")?;
    if store.adapter(&id).await?.is_some() {
        anyhow::bail!("an adapter `{id}` is already registered; pick another --id");
    }
    let adapters_dir = Path::new(&settings.adapters.dir);
    let staged = Staged {
        base: model.gguf.clone(),
        source: dir.to_path_buf(),
        path: adapters_dir.join(format!("{id}.gguf.staged")),
    };
    let hyper_parameters = serde_json::to_value(ImportedShape {
        rank: adapter.rank,
        alpha: adapter.alpha,
        tensors: adapter.tensors.len(),
    })?;
    let training_data = serde_json::to_value(ImportedFrom { imported_from: dir })?;
    // Hashing, writing and llama.cpp's check are blocking.
    let (base_sha, staged) = tokio::task::spawn_blocking(move || staged.check(&adapter)).await??;
    let row = Registration {
        base_model_sha256: base_sha,
        parent_id: None,
        origin: AdapterOrigin::Import,
        training_data,
        hyper_parameters,
        projector: None,
    };
    let spec = register(&store, adapters_dir, staged, AdapterId::Given(id), row).await?;
    Ok(Imported {
        id: spec.id,
        path: spec.path,
    })
}

/// The registry id: the one asked for, else the directory's name; letters,
/// digits, `-`, `_` and `.` only, since it names the file.
fn import_id(dir: &Path, id: Option<String>) -> anyhow::Result<String> {
    let id = id.unwrap_or_else(|| {
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "imported".into())
    });
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        anyhow::bail!("--id `{id}`: use letters, digits, `-`, `_` and `.` only");
    }
    Ok(id)
}

/// Where an import is staged and what it is checked against.
struct Staged {
    base: PathBuf,
    source: PathBuf,
    /// Beside its final name in the adapter store.
    path: PathBuf,
}

impl Staged {
    /// Writes the adapter under its staging name, so only a file llama.cpp
    /// accepts reaches the registry; a refused file is removed. Returns the
    /// base model's sha256 and the staged file (blocking).
    fn check(self, adapter: &ImportedAdapter) -> anyhow::Result<(String, PathBuf)> {
        let base_sha = sha256_file(&self.base).context("hashing the base model")?;
        write_adapter(
            &self.path,
            "llama",
            adapter.alpha,
            &adapter.tensors,
            &[(
                "dfa.imported_from".into(),
                self.source.display().to_string(),
            )],
        )?;
        if let Err(e) = check_adapter(&self.base, &self.path) {
            let _ = std::fs::remove_file(&self.path);
            return Err(anyhow::Error::new(e)
                .context("llama.cpp cannot apply this adapter to the configured base model"));
        }
        Ok((base_sha, self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_defaults_to_the_directory_and_must_name_a_file() {
        let dir = Path::new("/adapters/peft-v2");
        assert_eq!(import_id(dir, None).unwrap(), "peft-v2");
        assert_eq!(import_id(dir, Some("mine_1.0".into())).unwrap(), "mine_1.0");
        assert_eq!(import_id(Path::new("/"), None).unwrap(), "imported");
        for bad in ["", "../x", "a b", "x/y"] {
            let err = import_id(dir, Some(bad.into())).unwrap_err().to_string();
            assert!(err.contains("use letters, digits"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_recorded_shapes_keep_their_keys() {
        let from = serde_json::to_value(ImportedFrom {
            imported_from: Path::new("/peft/v2"),
        })
        .unwrap();
        assert_eq!(from, serde_json::json!({"imported_from": "/peft/v2"}));
        let shape = serde_json::to_value(ImportedShape {
            rank: 2,
            alpha: 4.0,
            tensors: 8,
        })
        .unwrap();
        assert_eq!(
            shape,
            serde_json::json!({"rank": 2, "alpha": 4.0, "tensors": 8})
        );
    }
}
