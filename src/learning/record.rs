//! What the registry records about a retrained adapter: the data it learned
//! from (including the retrain watermark, the last correction revision it
//! saw) and its hyper-parameters. The only place these JSON shapes are
//! written or read. An imported adapter's columns have their own shapes,
//! beside the import (`registry::import`), since `registry` does not depend
//! on `learning`; they carry no watermark.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::evaluate::{Decision, Scores};
use crate::domain::adapter::AdapterRecord;
use crate::domain::lora::TrainConfig;
use crate::metrics::report::Report;

/// The dataset a run learned from, by content.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetRecord {
    pub path: PathBuf,
    pub sha256: String,
    pub items: usize,
}

/// An adapter's `training_data` column.
#[derive(Debug, Clone, Serialize)]
pub struct TrainingData {
    /// The watermark: the next run learns from corrections above it.
    pub max_revision: i64,
    /// The watermark this run started from.
    pub since_revision: i64,
    /// Request ids of the corrections above `since_revision`.
    pub new_corrections: Vec<String>,
    pub replayed_corrections: usize,
    pub dataset: Option<DatasetRecord>,
    pub training_items: usize,
    pub heldout_items: usize,
    /// How many items were skipped before training.
    pub skipped: usize,
}

impl TrainingData {
    pub fn to_json(&self) -> serde_json::Result<Value> {
        serde_json::to_value(self)
    }
}

/// The part of `training_data` the next run reads back.
#[derive(Deserialize)]
struct Watermark {
    max_revision: Option<i64>,
}

/// The last correction revision `adapter` learned from; 0 for none (no
/// adapter, or one trained elsewhere or without a readable watermark), so
/// every standing correction is new.
pub fn watermark(adapter: Option<&AdapterRecord>) -> i64 {
    adapter.map_or(0, |a| read_watermark(&a.training_data))
}

fn read_watermark(training_data: &Value) -> i64 {
    Watermark::deserialize(training_data)
        .ok()
        .and_then(|w| w.max_revision)
        .unwrap_or(0)
}

/// An adapter's `hyper_parameters` column.
#[derive(Debug, Clone, Serialize)]
pub struct HyperParameters<'a> {
    pub config: &'a TrainConfig,
    pub continued_from_parent: bool,
    pub epoch_losses: &'a [f64],
}

impl HyperParameters<'_> {
    pub fn to_json(&self) -> serde_json::Result<Value> {
        serde_json::to_value(self)
    }
}

/// An adapter's `metrics` column: the gate's inputs and its decision.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics<'a> {
    pub candidate: &'a Scores,
    pub active: &'a Scores,
    /// The adapter the candidate was compared with; none: the base model.
    pub compared_with: Option<&'a str>,
    /// `{"promote": reason}` or `{"reject": reason}`.
    pub decision: &'a Decision,
    /// DFA-Bench's report of the candidate on the held-out split
    /// (`dfa adapters list` shows its headline numbers).
    pub report: Option<&'a Report>,
    /// The same for the adapter it was compared with.
    pub active_report: Option<&'a Report>,
}

impl Metrics<'_> {
    pub fn to_json(&self) -> serde_json::Result<Value> {
        serde_json::to_value(self)
    }
}

/// The numbers `dfa adapters list` shows of an adapter: from the held-out
/// report its evaluation stored (none for an imported adapter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Headline {
    pub heldout_items: Option<u64>,
    pub accuracy: Option<f64>,
    pub roc_auc: Option<f64>,
    pub ece_15: Option<f64>,
    pub type_accuracy: Option<f64>,
    pub type_macro_f1: Option<f64>,
}

impl Headline {
    pub fn of(metrics: &Value) -> Headline {
        let r = &metrics["report"];
        let d = &r["detection"];
        Headline {
            heldout_items: d["items"].as_u64(),
            accuracy: d["accuracy"].as_f64(),
            roc_auc: d["roc_auc"].as_f64(),
            ece_15: d["ece_15"].as_f64(),
            type_accuracy: r["classification"]["accuracy"].as_f64(),
            type_macro_f1: r["classification"]["macro_f1"].as_f64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::import::ImportedFrom;
    use serde_json::json;

    #[test]
    fn the_watermark_written_is_the_one_read_back() {
        let data = TrainingData {
            max_revision: 17,
            since_revision: 3,
            new_corrections: vec!["r".into()],
            replayed_corrections: 0,
            dataset: None,
            training_items: 1,
            heldout_items: 0,
            skipped: 0,
        };
        let json = data.to_json().unwrap();
        assert_eq!(json["max_revision"], 17);
        assert_eq!(json["since_revision"], 3);
        assert_eq!(json["dataset"], Value::Null);
        assert_eq!(read_watermark(&json), 17);
    }

    #[test]
    fn without_a_watermark_every_correction_is_new() {
        assert_eq!(watermark(None), 0);
        let imported = ImportedFrom {
            imported_from: std::path::Path::new("/peft"),
        };
        assert_eq!(read_watermark(&serde_json::to_value(imported).unwrap()), 0);
        assert_eq!(read_watermark(&json!({"max_revision": "x"})), 0);
        assert_eq!(read_watermark(&json!({"max_revision": 2.5})), 0);
        assert_eq!(read_watermark(&Value::Null), 0);
    }

    #[test]
    fn metrics_name_the_decision() {
        let scores = Scores::default();
        let metrics = |decision: &Decision| {
            Metrics {
                candidate: &scores,
                active: &scores,
                compared_with: None,
                decision,
                report: None,
                active_report: None,
            }
            .to_json()
            .unwrap()
        };
        let promoted = metrics(&Decision::Promote("better".into()));
        assert_eq!(promoted["decision"], json!({"promote": "better"}));
        assert_eq!(promoted["compared_with"], Value::Null);
        assert_eq!(
            promoted["active"]["corrected"],
            json!({"correct": 0, "total": 0})
        );
        let rejected = metrics(&Decision::Reject("worse".into()));
        assert_eq!(rejected["decision"], json!({"reject": "worse"}));
    }

    #[test]
    fn the_headline_is_read_from_the_stored_report() {
        use crate::domain::Label;
        use crate::metrics::report::{report, Prediction, Truth};
        let p = |p_fake: f64, label: Label| Prediction {
            p_fake: Some(p_fake),
            truth: Truth {
                label: Some(label),
                ..Truth::default()
            },
            ..Prediction::default()
        };
        let r = report(
            &[
                p(0.9, Label::Fake),
                p(0.2, Label::Real),
                p(0.6, Label::Real),
            ],
            0.5,
            0.01,
        );
        let scores = Scores::default();
        let decision = Decision::Promote("ok".into());
        let json = Metrics {
            candidate: &scores,
            active: &scores,
            compared_with: None,
            decision: &decision,
            report: Some(&r),
            active_report: None,
        }
        .to_json()
        .unwrap();
        let h = Headline::of(&json);
        assert_eq!(h.heldout_items, Some(3));
        assert!((h.accuracy.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(h.roc_auc, Some(1.0));
        assert_eq!(h.type_accuracy, None, "no typed fakes");
        assert_eq!(Headline::of(&json!({})), Headline::default());
    }
}
