//! What `dfa eval` writes into its output folder: predictions.jsonl,
//! report.json, report.md and the three plots.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::lines::PredictionLine;
use super::markdown;
use super::plots;
use super::run::{Dataset, Skipped};
use crate::domain::dataset::LineError;
use crate::domain::ModelIdentity;
use crate::metrics::detection::{reliability, roc_curve, Scored};
use crate::metrics::report::{report, Prediction, Report};

/// One model's evaluation on one dataset, ready to be written.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub dataset: DatasetInfo,
    /// The model that answered (None: read back from an earlier run).
    pub model: Option<ModelIdentity>,
    pub threshold: f64,
    pub target_fpr: f64,
    pub duration_s: f64,
    pub skipped: Vec<Skipped>,
    pub report: Report,
    #[serde(skip)]
    pub lines: Vec<PredictionLine>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatasetInfo {
    pub path: PathBuf,
    pub sha256: String,
    pub lines_read: usize,
    pub bad_lines: Vec<BadLine>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BadLine {
    pub line: usize,
    pub reason: String,
}

impl DatasetInfo {
    pub fn of(d: &Dataset) -> DatasetInfo {
        DatasetInfo {
            path: d.path.clone(),
            sha256: d.sha256.clone(),
            lines_read: d.items.len(),
            bad_lines: d.bad_lines.iter().map(BadLine::from).collect(),
        }
    }
}

impl From<&LineError> for BadLine {
    fn from(e: &LineError) -> BadLine {
        BadLine {
            line: e.line,
            reason: e.reason.clone(),
        }
    }
}

impl Evaluation {
    /// Scores `lines` (one per evaluated item).
    pub fn new(
        dataset: DatasetInfo,
        model: Option<ModelIdentity>,
        lines: Vec<PredictionLine>,
        skipped: Vec<Skipped>,
        threshold: f64,
        target_fpr: f64,
        duration_s: f64,
    ) -> Evaluation {
        let predictions: Vec<Prediction> = lines.iter().map(PredictionLine::prediction).collect();
        Evaluation {
            report: report(&predictions, threshold, target_fpr),
            dataset,
            model,
            threshold,
            target_fpr,
            duration_s,
            skipped,
            lines,
        }
    }

    pub fn predictions(&self) -> Vec<Prediction> {
        self.lines.iter().map(PredictionLine::prediction).collect()
    }

    /// Writes every output into `dir` (created if missing; blocking).
    pub fn write(&self, dir: &Path, title: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let mut jsonl = String::new();
        for line in &self.lines {
            jsonl.push_str(&serde_json::to_string(line)?);
            jsonl.push('\n');
        }
        crate::atomic::write(&dir.join("predictions.jsonl"), jsonl.as_bytes())?;
        crate::atomic::write(
            &dir.join("report.json"),
            serde_json::to_string_pretty(self)?.as_bytes(),
        )?;
        let md = markdown::render(
            title,
            &self.report,
            self.skipped.len(),
            self.dataset.bad_lines.len(),
        );
        crate::atomic::write(&dir.join("report.md"), md.as_bytes())?;
        let scored = self.scored();
        let d = &self.report.detection;
        crate::atomic::write(
            &dir.join("roc.svg"),
            plots::roc(&roc_curve(&scored), d.roc_auc).as_bytes(),
        )?;
        crate::atomic::write(
            &dir.join("reliability.svg"),
            plots::reliability(&reliability(&scored, 15), d.ece_15).as_bytes(),
        )?;
        crate::atomic::write(
            &dir.join("confusion.svg"),
            plots::confusion(&self.report.classification.confusion).as_bytes(),
        )?;
        Ok(())
    }

    fn scored(&self) -> Vec<Scored> {
        self.lines
            .iter()
            .filter_map(|l| {
                Some(Scored {
                    p_fake: l.p_fake?,
                    fake: l.truth_label? == crate::domain::Label::Fake,
                })
            })
            .collect()
    }
}
