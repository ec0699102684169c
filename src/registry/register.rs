//! Registering an adapter: a complete file, staged in the adapter store,
//! is hashed, moved to its final name (never over another file) and recorded
//! as a `candidate` row. Retraining and `dfa lora import` both end here.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::atomic;
use crate::domain::adapter::{AdapterOrigin, NewAdapter};
use crate::domain::sha256_file;
use crate::engine::AdapterSpec;
use crate::store::{Store, StoreError};

/// The id a registered adapter gets; its file is `<id>.gguf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterId {
    /// Exactly this id.
    Given(String),
    /// `<prefix>-<the first 8 hex digits of the file's sha256>`.
    ByContent { prefix: String },
}

impl AdapterId {
    fn resolve(self, sha256: &str) -> String {
        match self {
            AdapterId::Given(id) => id,
            AdapterId::ByContent { prefix } => format!("{prefix}-{}", &sha256[..8]),
        }
    }
}

/// What the registry records about an adapter besides its file.
#[derive(Debug, Clone)]
pub struct Registration {
    pub base_model_sha256: String,
    pub parent_id: Option<String>,
    pub origin: AdapterOrigin,
    pub training_data: Value,
    pub hyper_parameters: Value,
    /// A complete mmproj file staged in the adapter store: the projector
    /// trained with the LoRA, registered with it as `<id>.mmproj.gguf`.
    pub projector: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("hashing the adapter")]
    Hash(#[source] std::io::Error),
    #[error("moving the adapter to {}", path.display())]
    Publish {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("registering the adapter")]
    Insert(#[source] StoreError),
    #[error("the adapter store's blocking task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// Registers the complete adapter file `staged` (a file in `adapters_dir`,
/// written atomically) as a `candidate` named by `id`, at scale 1. Returns
/// what the engine needs to apply it. It owns `staged`: on any failure the
/// staged file and anything published from it are removed, so a failed
/// registration leaves nothing in the adapter store (and its id free).
pub async fn register(
    store: &Store,
    adapters_dir: &Path,
    staged: PathBuf,
    id: AdapterId,
    row: Registration,
) -> Result<AdapterSpec, RegisterError> {
    let dir = adapters_dir.to_path_buf();
    let mut leftovers = vec![staged.clone()];
    leftovers.extend(row.projector.clone());
    let projector = row.projector.clone();
    // Hashing and the durable renames are blocking.
    let placed = tokio::task::spawn_blocking(move || place_pair(&dir, &staged, projector, id))
        .await
        .map_err(RegisterError::Task)
        .and_then(|r| r);
    let Placed {
        id,
        file_name,
        sha256,
        projector,
    } = match placed {
        Ok(placed) => placed,
        Err(e) => {
            for f in leftovers {
                remove_quietly(f).await;
            }
            return Err(e);
        }
    };
    let inserted = store
        .insert_adapter(&NewAdapter {
            id: id.clone(),
            path: file_name.clone(),
            sha256,
            base_model_sha256: row.base_model_sha256,
            parent_id: row.parent_id,
            scale: 1.0,
            origin: row.origin,
            training_data: row.training_data,
            hyper_parameters: row.hyper_parameters,
            mmproj: projector.clone(),
        })
        .await
        .map_err(RegisterError::Insert);
    if let Err(e) = inserted {
        remove_quietly(adapters_dir.join(&file_name)).await;
        if let Some((name, _)) = projector {
            remove_quietly(adapters_dir.join(name)).await;
        }
        return Err(e);
    }
    Ok(AdapterSpec {
        id,
        path: adapters_dir.join(file_name),
        scale: 1.0,
        mmproj: projector.map(|(name, _)| adapters_dir.join(name)),
    })
}

/// Where a registration's files went.
#[derive(Debug)]
struct Placed {
    id: String,
    file_name: String,
    sha256: String,
    /// The projector's file name and sha256.
    projector: Option<(String, String)>,
}

/// Publishes the LoRA as `<id>.gguf` and its projector, if any, as
/// `<id>.mmproj.gguf`; on a failure with the projector, the published LoRA
/// is taken back so that nothing is left half registered (blocking).
fn place_pair(
    dir: &Path,
    staged: &Path,
    projector: Option<PathBuf>,
    id: AdapterId,
) -> Result<Placed, RegisterError> {
    let (id, file_name, sha256) = place(dir, staged, id)?;
    let projector = match projector {
        None => None,
        Some(staged_mmproj) => {
            let placed = sha256_file(&staged_mmproj)
                .map_err(RegisterError::Hash)
                .and_then(|sha| {
                    let name = format!("{id}.mmproj.gguf");
                    let path = dir.join(&name);
                    atomic::publish(&staged_mmproj, &path)
                        .map_err(|source| RegisterError::Publish { path, source })?;
                    Ok((name, sha))
                });
            match placed {
                Ok(p) => Some(p),
                Err(e) => {
                    let _ = std::fs::remove_file(dir.join(&file_name));
                    return Err(e);
                }
            }
        }
    };
    Ok(Placed {
        id,
        file_name,
        sha256,
        projector,
    })
}

/// Cleanup on a failure path: the failure being reported matters more than
/// a file that could not be removed, which is logged.
async fn remove_quietly(path: PathBuf) {
    let shown = path.display().to_string();
    match tokio::task::spawn_blocking(move || std::fs::remove_file(&path)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
        other => {
            tracing::warn!(path = %shown, result = ?other, "could not remove an unregistered adapter file")
        }
    }
}

/// Hashes `staged` and publishes it as `<id>.gguf` in `dir`; returns the id,
/// the file name and the sha256 (blocking).
fn place(
    dir: &Path,
    staged: &Path,
    id: AdapterId,
) -> Result<(String, String, String), RegisterError> {
    let sha256 = sha256_file(staged).map_err(RegisterError::Hash)?;
    let id = id.resolve(&sha256);
    let file_name = format!("{id}.gguf");
    let path = dir.join(&file_name);
    atomic::publish(staged, &path).map_err(|source| RegisterError::Publish { path, source })?;
    Ok((id, file_name, sha256))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_given_or_named_by_content() {
        let sha = "0123456789abcdef";
        assert_eq!(AdapterId::Given("peft-v2".into()).resolve(sha), "peft-v2");
        let by_content = AdapterId::ByContent {
            prefix: "lora-20240101-000000".into(),
        };
        assert_eq!(by_content.resolve(sha), "lora-20240101-000000-01234567");
    }

    #[test]
    fn placing_names_the_file_by_its_id_and_keeps_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let staged = dir.path().join("candidate-x.gguf");
        atomic::write(&staged, b"adapter").unwrap();
        let id = AdapterId::ByContent {
            prefix: "lora-s".into(),
        };
        let (id, file_name, sha) = place(dir.path(), &staged, id).unwrap();
        assert_eq!(sha, crate::domain::sha256_hex(b"adapter"));
        assert_eq!(id, format!("lora-s-{}", &sha[..8]));
        assert_eq!(file_name, format!("{id}.gguf"));
        assert_eq!(
            std::fs::read(dir.path().join(&file_name)).unwrap(),
            b"adapter"
        );
        assert!(!staged.exists());
    }

    #[test]
    fn placing_never_replaces_a_registered_file() {
        let dir = tempfile::tempdir().unwrap();
        atomic::write(&dir.path().join("peft.gguf"), b"first").unwrap();
        let staged = dir.path().join("peft.gguf.staged");
        atomic::write(&staged, b"second").unwrap();
        let err = place(dir.path(), &staged, AdapterId::Given("peft".into())).unwrap_err();
        assert!(
            matches!(&err, RegisterError::Publish { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "moving the adapter to {}",
                dir.path().join("peft.gguf").display()
            )
        );
        assert_eq!(
            std::fs::read(dir.path().join("peft.gguf")).unwrap(),
            b"first"
        );
        assert!(staged.exists(), "the refused file is left for the caller");
    }

    #[test]
    fn a_projector_is_placed_beside_its_lora_or_neither_is() {
        let dir = tempfile::tempdir().unwrap();
        let (lora, mmproj) = (dir.path().join(".lora"), dir.path().join(".mmproj"));
        atomic::write(&lora, b"lora").unwrap();
        atomic::write(&mmproj, b"projector").unwrap();
        let placed = place_pair(
            dir.path(),
            &lora,
            Some(mmproj.clone()),
            AdapterId::Given("pair".into()),
        )
        .unwrap();
        assert_eq!(placed.file_name, "pair.gguf");
        let (name, sha) = placed.projector.unwrap();
        assert_eq!(name, "pair.mmproj.gguf");
        assert_eq!(sha, crate::domain::sha256_hex(b"projector"));
        assert_eq!(std::fs::read(dir.path().join(&name)).unwrap(), b"projector");

        // The projector's name is taken: the LoRA published first is taken back.
        atomic::write(&lora, b"lora 2").unwrap();
        atomic::write(&dir.path().join("second.mmproj.gguf"), b"someone else's").unwrap();
        atomic::write(&mmproj, b"projector 2").unwrap();
        let err = place_pair(
            dir.path(),
            &lora,
            Some(mmproj.clone()),
            AdapterId::Given("second".into()),
        )
        .unwrap_err();
        assert!(matches!(err, RegisterError::Publish { .. }), "{err:?}");
        assert!(!dir.path().join("second.gguf").exists());
        assert!(
            mmproj.exists(),
            "the refused projector is left for the caller"
        );
    }
}
