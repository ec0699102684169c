//! Scoring a model on the held-out split and on the new corrections, and the
//! promotion gate that compares a candidate with the active adapter.

use serde::Serialize;

use super::items::Item;
use crate::domain::{ForgeryType, Label};

/// What the model answered for an item's image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub label: Label,
    pub forgery_type: Option<ForgeryType>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Tally {
    pub correct: usize,
    pub total: usize,
}

impl Tally {
    fn add(&mut self, ok: bool) {
        self.total += 1;
        self.correct += usize::from(ok);
    }

    pub fn accuracy(&self) -> Option<f64> {
        (self.total > 0).then(|| self.correct as f64 / self.total as f64)
    }
}

/// One model's scores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Scores {
    /// Held-out items with a known label.
    pub heldout_detection: Tally,
    /// Held-out forged items with a known type.
    pub heldout_classification: Tally,
    /// The new corrections: label right, and type right when one was given.
    pub corrected: Tally,
    /// ROC AUC of p_fake on the held-out split (DFA-Bench's), when it has
    /// fakes and reals: how well the model ranks, whatever the threshold.
    pub heldout_auc: Option<f64>,
}

impl Scores {
    pub fn add_heldout(&mut self, item: &Item, p: Prediction) {
        if let Some(label) = item.label {
            self.heldout_detection.add(p.label == label);
        }
        if let (Some(Label::Fake), Some(t)) = (item.label, item.forgery_type) {
            self.heldout_classification.add(p.forgery_type == Some(t));
        }
    }

    pub fn add_corrected(&mut self, item: &Item, p: Prediction) {
        if let Some(label) = item.label {
            let type_ok = item.forgery_type.is_none() || p.forgery_type == item.forgery_type;
            self.corrected.add(p.label == label && type_ok);
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Gate {
    pub max_heldout_drop: f64,
    pub min_corrected_gain: f64,
}

/// The gate's verdict and its reason; serialised as `{"promote": reason}` or
/// `{"reject": reason}` in the registry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Promote(String),
    Reject(String),
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

/// Promote only if the candidate is at least as good as the active model on
/// the held-out split (detection and classification accuracy, and ROC AUC,
/// each within `max_heldout_drop`) and on the new corrections (by
/// `min_corrected_gain`); with nothing to judge by, reject.
pub fn decide(candidate: &Scores, active: &Scores, gate: Gate) -> Decision {
    let mut judged = false;
    let mut reasons = Vec::new();
    let mut passed = Vec::new();
    let held = [
        (
            "held-out detection",
            candidate.heldout_detection,
            active.heldout_detection,
        ),
        (
            "held-out classification",
            candidate.heldout_classification,
            active.heldout_classification,
        ),
    ];
    for (name, c, a) in held {
        if let (Some(c), Some(a)) = (c.accuracy(), a.accuracy()) {
            judged = true;
            let line = format!("{name} {} vs active {}", pct(c), pct(a));
            if c + 1e-9 < a - gate.max_heldout_drop {
                reasons.push(format!(
                    "{line} (allowed drop {})",
                    pct(gate.max_heldout_drop)
                ));
            } else {
                passed.push(line);
            }
        }
    }
    if let (Some(c), Some(a)) = (candidate.heldout_auc, active.heldout_auc) {
        judged = true;
        let line = format!("held-out ROC AUC {c:.3} vs active {a:.3}");
        if c + 1e-9 < a - gate.max_heldout_drop {
            reasons.push(format!(
                "{line} (allowed drop {:.3})",
                gate.max_heldout_drop
            ));
        } else {
            passed.push(line);
        }
    }
    if let (Some(c), Some(a)) = (candidate.corrected.accuracy(), active.corrected.accuracy()) {
        judged = true;
        let line = format!("new corrections {} vs active {}", pct(c), pct(a));
        if c + 1e-9 < a + gate.min_corrected_gain {
            reasons.push(format!(
                "{line} (required gain {})",
                pct(gate.min_corrected_gain)
            ));
        } else {
            passed.push(line);
        }
    }
    if !judged {
        return Decision::Reject(
            "nothing to evaluate on (no labelled held-out items, no new corrections); promote by hand with `dfa adapters promote`".into(),
        );
    }
    if reasons.is_empty() {
        Decision::Promote(passed.join("; "))
    } else {
        Decision::Reject(format!(
            "worse than the active adapter: {}",
            reasons.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(correct: usize, total: usize) -> Tally {
        Tally { correct, total }
    }

    fn scores(det: (usize, usize), corr: (usize, usize)) -> Scores {
        Scores {
            heldout_detection: tally(det.0, det.1),
            heldout_classification: Tally::default(),
            corrected: tally(corr.0, corr.1),
            heldout_auc: None,
        }
    }

    const GATE: Gate = Gate {
        max_heldout_drop: 0.0,
        min_corrected_gain: 0.0,
    };

    #[test]
    fn promotes_only_when_at_least_as_good_on_both() {
        assert!(matches!(
            decide(&scores((8, 10), (5, 5)), &scores((8, 10), (1, 5)), GATE),
            Decision::Promote(_)
        ));
        let worse_heldout = decide(&scores((6, 10), (5, 5)), &scores((8, 10), (1, 5)), GATE);
        assert!(
            matches!(&worse_heldout, Decision::Reject(r) if r.contains("held-out detection 60.0% vs active 80.0%"))
        );
        let worse_fix = decide(&scores((9, 10), (1, 5)), &scores((8, 10), (2, 5)), GATE);
        assert!(matches!(worse_fix, Decision::Reject(_)));
        let tolerant = Gate {
            max_heldout_drop: 0.25,
            ..GATE
        };
        assert!(matches!(
            decide(&scores((6, 10), (5, 5)), &scores((8, 10), (1, 5)), tolerant),
            Decision::Promote(_)
        ));
        assert!(
            matches!(decide(&Scores::default(), &Scores::default(), GATE), Decision::Reject(r) if r.contains("nothing to evaluate"))
        );
    }

    #[test]
    fn a_candidate_that_ranks_worse_is_rejected_even_at_equal_accuracy() {
        let with_auc = |s: Scores, auc: f64| Scores {
            heldout_auc: Some(auc),
            ..s
        };
        let candidate = with_auc(scores((8, 10), (5, 5)), 0.70);
        let active = with_auc(scores((8, 10), (1, 5)), 0.90);
        let d = decide(&candidate, &active, GATE);
        assert!(
            matches!(&d, Decision::Reject(r) if r.contains("held-out ROC AUC 0.700 vs active 0.900")),
            "{d:?}"
        );
        let tolerant = Gate {
            max_heldout_drop: 0.25,
            ..GATE
        };
        let d = decide(&candidate, &active, tolerant);
        assert!(
            matches!(&d, Decision::Promote(r) if r.contains("ROC AUC")),
            "{d:?}"
        );
        // Only one side has an AUC (one class held out): not compared.
        let d = decide(&candidate, &scores((8, 10), (1, 5)), GATE);
        assert!(
            matches!(&d, Decision::Promote(r) if !r.contains("AUC")),
            "{d:?}"
        );
    }
}
