//! The learning loop: reviewers' corrections and instruction datasets become
//! LoRA adapters that are trained, evaluated against the active one, and
//! promoted or rejected (`dfa retrain`).

mod candidate;
mod compare;
pub mod dataset;
pub mod evaluate;
pub mod items;
mod plan;
pub mod record;
pub mod retrain;
mod steps;

use std::path::PathBuf;

/// How `dfa retrain` was asked to run.
#[derive(Debug, Clone, Default)]
pub struct RetrainOptions {
    pub dataset: Option<PathBuf>,
    /// A bad dataset line fails the job instead of being skipped.
    pub strict: bool,
    pub dry_run: bool,
    pub progress: bool,
}
