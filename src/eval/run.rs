//! Running an evaluation: the dataset read and checked, each readable image
//! decoded off the async threads and asked about, `capacity` at a time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use indicatif::ProgressBar;

use super::{predict, EvalItem};
use crate::domain::dataset::{parse_records, LineError};
use crate::domain::prompts::Prompts;
use crate::engine::{Backend, EngineError};
use crate::intake::decode_image;
use crate::metrics::report::Prediction;
use crate::settings::ImageSettings;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read the dataset {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} has no readable item")]
    Empty { path: PathBuf },
    #[error("the engine stopped: {0}")]
    Engine(#[source] EngineError),
}

/// A dataset file, read.
pub struct Dataset {
    pub path: PathBuf,
    pub sha256: String,
    pub items: Vec<EvalItem>,
    pub bad_lines: Vec<LineError>,
}

/// Reads and parses `path` (blocking). Bad lines are returned, not fatal.
pub fn read_dataset(path: &Path, prompts: &Prompts) -> Result<Dataset, EvalError> {
    let read = |source| EvalError::Read {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::read(path).map_err(read)?;
    let text = String::from_utf8_lossy(&bytes);
    let base = path.parent().unwrap_or(Path::new("."));
    let (records, bad_lines) = parse_records(&text, base, prompts);
    if records.is_empty() {
        return Err(EvalError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(Dataset {
        path: path.to_path_buf(),
        sha256: crate::domain::sha256_hex(&bytes),
        items: records
            .into_iter()
            .map(|r| EvalItem::from_record(r, prompts))
            .collect(),
        bad_lines,
    })
}

/// What one run produced: a prediction per evaluated item (with the item's
/// index in the dataset), and the items that could not be evaluated.
#[derive(Debug, Default)]
pub struct Run {
    pub predictions: Vec<(usize, Prediction)>,
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Skipped {
    pub id: String,
    pub line: usize,
    pub reason: String,
}

/// Evaluates `items` on `backend`. An unreadable image, or a request the
/// engine refuses, skips its item; an engine that stopped ends the run.
pub async fn run_items<B: Backend>(
    backend: &B,
    items: &[EvalItem],
    image: &ImageSettings,
    concurrency: usize,
    progress: &ProgressBar,
) -> Result<Run, EvalError> {
    let image = Arc::new(image.clone());
    let mut results = futures::stream::iter(items.iter().enumerate())
        .map(|(i, item)| {
            let image = image.clone();
            async move { (i, one(backend, item, image).await) }
        })
        .buffered(concurrency.max(1));
    let mut run = Run::default();
    while let Some((i, outcome)) = results.next().await {
        progress.inc(1);
        match outcome {
            Ok(p) => run.predictions.push((i, p)),
            Err(One::Stopped(e)) => return Err(EvalError::Engine(e)),
            Err(One::Skip(reason)) => {
                progress.suspend(|| {
                    eprintln!(
                        "dfa eval: line {} ({}): {reason} (skipped)",
                        items[i].line, items[i].id
                    )
                });
                run.skipped.push(Skipped {
                    id: items[i].id.clone(),
                    line: items[i].line,
                    reason,
                });
            }
        }
    }
    Ok(run)
}

enum One {
    Skip(String),
    Stopped(EngineError),
}

async fn one<B: Backend>(
    backend: &B,
    item: &EvalItem,
    limits: Arc<ImageSettings>,
) -> Result<Prediction, One> {
    let path = item.image.clone();
    let decoded = tokio::task::spawn_blocking(move || {
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        decode_image(&bytes, &limits).map_err(|e| format!("{}: {e}", path.display()))
    })
    .await
    .map_err(|e| One::Skip(format!("decoding failed: {e}")))?
    .map_err(One::Skip)?;
    predict(backend, item, decoded).await.map_err(|e| match e {
        EngineError::Stopped => One::Stopped(e),
        other => One::Skip(format!("{} ({})", other, other.kind())),
    })
}
