//! `dfa lora import`: a PEFT LoRA trained elsewhere becomes a GGUF adapter in
//! the adapter store and a `candidate` in the registry, once llama.cpp has
//! shown it can apply it to the configured base model.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::open_store;
use crate::domain::adapter::{AdapterOrigin, NewAdapter};
use crate::domain::sha256_file;
use crate::model::files::ModelFiles;
use crate::settings::Settings;
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
    let store = open_store(settings, 1).await?;
    if store.adapter(&id).await?.is_some() {
        anyhow::bail!("an adapter `{id}` is already registered; pick another --id");
    }
    let file_name = format!("{id}.gguf");
    let path = Path::new(&settings.adapters.dir).join(&file_name);
    let staged = Staged {
        base: model.gguf.clone(),
        source: dir.to_path_buf(),
        path: path.clone(),
    };
    let (rank, alpha, tensors) = (adapter.rank, adapter.alpha, adapter.tensors.len());
    // Hashing, writing and llama.cpp's check are blocking.
    let (base_sha, sha) = tokio::task::spawn_blocking(move || staged.publish(&adapter)).await??;
    store
        .insert_adapter(&NewAdapter {
            id: id.clone(),
            path: file_name,
            sha256: sha,
            base_model_sha256: base_sha,
            parent_id: None,
            scale: 1.0,
            origin: AdapterOrigin::Import,
            training_data: serde_json::json!({"imported_from": dir}),
            hyper_parameters: serde_json::json!({"rank": rank, "alpha": alpha, "tensors": tensors}),
        })
        .await
        .context("registering the adapter")?;
    Ok(Imported { id, path })
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

/// Where an import is written and what it is checked against.
struct Staged {
    base: PathBuf,
    source: PathBuf,
    path: PathBuf,
}

impl Staged {
    /// Writes the adapter under a staging name, so only a file llama.cpp
    /// accepts reaches the store, then moves it into place. Returns the
    /// base model's and the adapter's sha256 (blocking).
    fn publish(&self, adapter: &ImportedAdapter) -> anyhow::Result<(String, String)> {
        let staged = self.path.with_extension("gguf.staged");
        let base_sha = sha256_file(&self.base).context("hashing the base model")?;
        write_adapter(
            &staged,
            "llama",
            adapter.alpha,
            &adapter.tensors,
            &[(
                "dfa.imported_from".into(),
                self.source.display().to_string(),
            )],
        )?;
        if let Err(e) = check_adapter(&self.base, &staged) {
            let _ = std::fs::remove_file(&staged);
            return Err(anyhow::Error::new(e)
                .context("llama.cpp cannot apply this adapter to the configured base model"));
        }
        std::fs::rename(&staged, &self.path)
            .with_context(|| format!("moving the adapter to {}", self.path.display()))?;
        Ok((base_sha, sha256_file(&self.path)?))
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
}
