//! DFA-Bench's report over a set of predictions: detection, classification,
//! artifact description and free conversation, overall and per slice (the
//! true forgery type, and the items' own `source` field when they carry one).

use std::collections::BTreeMap;

use serde::Serialize;

use super::classification::TypeConfusion;
use super::detection::{brier, ece, roc_auc, threshold_for_fpr, Confusion, Scored};
use super::regions::RegionCounts;
use super::text::{cider_d, corpus_bleu, rouge_l, tokenize_rouge};
use crate::domain::{Artifact, ForgeryType, Label, TypeScores};

/// What the dataset says about an item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Truth {
    pub label: Option<Label>,
    pub forgery_type: Option<ForgeryType>,
    /// The reference artifact description, as text and as regions.
    pub explanation: Option<String>,
    pub artifacts: Vec<Artifact>,
}

/// What the model said about an item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prediction {
    pub id: String,
    /// The dataset's own grouping (`source`), if any.
    pub slice: Option<String>,
    pub truth: Truth,
    pub p_fake: Option<f64>,
    pub type_scores: Option<TypeScores>,
    /// The most likely type by the type scores (whatever the label).
    pub forgery_type: Option<ForgeryType>,
    pub explanation: Option<String>,
    pub artifacts: Vec<Artifact>,
    /// Free conversation: (reference answer, generated answer).
    pub answers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectionReport {
    pub items: usize,
    pub threshold: f64,
    pub confusion: Confusion,
    pub accuracy: Option<f64>,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub roc_auc: Option<f64>,
    pub ece_15: Option<f64>,
    pub brier: Option<f64>,
    pub target_fpr: f64,
    /// The lowest threshold within `target_fpr`, and the recall it gives.
    pub threshold_at_target: Option<f64>,
    pub recall_at_target: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationReport {
    pub items: usize,
    pub accuracy: Option<f64>,
    pub macro_f1: Option<f64>,
    pub confusion: TypeConfusion,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TextReport {
    pub items: usize,
    /// Corpus BLEU-1…4, 0–100 (sacreBLEU's).
    pub bleu: [f64; 4],
    /// Mean ROUGE-L F over items (rouge-score's).
    pub rouge_l: f64,
    pub cider_d: f64,
    /// Regions named (artifact descriptions only).
    pub regions: Option<RegionCounts>,
    pub region_precision: Option<f64>,
    pub region_recall: Option<f64>,
    pub region_f1: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub items: usize,
    pub detection: DetectionReport,
    pub classification: ClassificationReport,
    pub artifacts: Option<TextReport>,
    pub conversation: Option<TextReport>,
    /// The same numbers per true forgery type (`type:face_swap`, …) and per
    /// source (`source:NAME`); slices have no slices of their own.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub slices: BTreeMap<String, Report>,
}

pub fn report(predictions: &[Prediction], threshold: f64, target_fpr: f64) -> Report {
    let mut top = report_of(predictions, threshold, target_fpr);
    let mut groups: BTreeMap<String, Vec<Prediction>> = BTreeMap::new();
    for p in predictions {
        if let Some(t) = p.truth.forgery_type {
            groups
                .entry(format!("type:{}", t.as_str()))
                .or_default()
                .push(p.clone());
        }
        if let Some(s) = &p.slice {
            groups
                .entry(format!("source:{s}"))
                .or_default()
                .push(p.clone());
        }
    }
    top.slices = groups
        .into_iter()
        .map(|(k, items)| (k, report_of(&items, threshold, target_fpr)))
        .collect();
    top
}

fn report_of(predictions: &[Prediction], threshold: f64, target_fpr: f64) -> Report {
    Report {
        items: predictions.len(),
        detection: detection(predictions, threshold, target_fpr),
        classification: classification(predictions),
        artifacts: artifacts(predictions),
        conversation: conversation(predictions),
        slices: BTreeMap::new(),
    }
}

fn detection(predictions: &[Prediction], threshold: f64, target_fpr: f64) -> DetectionReport {
    let scored: Vec<Scored> = predictions
        .iter()
        .filter_map(|p| {
            Some(Scored {
                p_fake: p.p_fake?,
                fake: p.truth.label? == Label::Fake,
            })
        })
        .collect();
    let c = Confusion::at(&scored, threshold);
    let at_target = threshold_for_fpr(&scored, target_fpr);
    DetectionReport {
        items: scored.len(),
        threshold,
        confusion: c,
        accuracy: c.accuracy(),
        precision: c.precision(),
        recall: c.recall(),
        f1: c.f1(),
        roc_auc: roc_auc(&scored),
        ece_15: ece(&scored, 15),
        brier: brier(&scored),
        target_fpr,
        threshold_at_target: at_target.map(|t| t.0),
        recall_at_target: at_target.map(|t| t.1),
    }
}

fn classification(predictions: &[Prediction]) -> ClassificationReport {
    let pairs: Vec<(ForgeryType, ForgeryType)> = predictions
        .iter()
        .filter(|p| p.truth.label != Some(Label::Real))
        .filter_map(|p| Some((p.truth.forgery_type?, p.forgery_type?)))
        .collect();
    let confusion = TypeConfusion::of(pairs.iter().copied());
    ClassificationReport {
        items: pairs.len(),
        accuracy: confusion.accuracy(),
        macro_f1: confusion.macro_f1(),
        confusion,
    }
}

fn text_report(pairs: &[(&str, &str)], regions: Option<RegionCounts>) -> Option<TextReport> {
    if pairs.is_empty() {
        return None;
    }
    let hyps: Vec<&str> = pairs.iter().map(|p| p.1).collect();
    let refs: Vec<&str> = pairs.iter().map(|p| p.0).collect();
    let rouge = pairs.iter().map(|(r, h)| rouge_l(h, r).2).sum::<f64>() / pairs.len() as f64;
    let (cider, _) = cider_d(
        &hyps.iter().map(|h| tokenize_rouge(h)).collect::<Vec<_>>(),
        &refs
            .iter()
            .map(|r| vec![tokenize_rouge(r)])
            .collect::<Vec<_>>(),
    );
    Some(TextReport {
        items: pairs.len(),
        bleu: [1, 2, 3, 4].map(|n| corpus_bleu(&hyps, &refs, n)),
        rouge_l: rouge,
        cider_d: cider,
        region_precision: regions.and_then(|r| r.precision()),
        region_recall: regions.and_then(|r| r.recall()),
        region_f1: regions.and_then(|r| r.f1()),
        regions,
    })
}

/// Items with a reference description; a missing generated one counts as
/// empty (the model said nothing where something was expected).
fn artifacts(predictions: &[Prediction]) -> Option<TextReport> {
    let with: Vec<&Prediction> = predictions
        .iter()
        .filter(|p| p.truth.explanation.is_some())
        .collect();
    let pairs: Vec<(&str, &str)> = with
        .iter()
        .map(|p| {
            (
                p.truth.explanation.as_deref().unwrap_or_default(),
                p.explanation.as_deref().unwrap_or_default(),
            )
        })
        .collect();
    let mut regions = RegionCounts::default();
    for p in &with {
        regions.add(RegionCounts::of(&p.artifacts, &p.truth.artifacts));
    }
    text_report(&pairs, Some(regions))
}

fn conversation(predictions: &[Prediction]) -> Option<TextReport> {
    let pairs: Vec<(&str, &str)> = predictions
        .iter()
        .flat_map(|p| p.answers.iter().map(|(r, h)| (r.as_str(), h.as_str())))
        .collect();
    text_report(&pairs, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::parse_artifacts;

    fn item(
        id: &str,
        fake: bool,
        p_fake: f64,
        ty: Option<ForgeryType>,
        said: Option<ForgeryType>,
    ) -> Prediction {
        Prediction {
            id: id.into(),
            truth: Truth {
                label: Some(if fake { Label::Fake } else { Label::Real }),
                forgery_type: ty,
                ..Truth::default()
            },
            p_fake: Some(p_fake),
            forgery_type: said,
            ..Prediction::default()
        }
    }

    #[test]
    fn a_perfect_model_scores_perfectly_everywhere() {
        use ForgeryType::*;
        let reference =
            "1. **Eyes**: The eyes are misaligned.\n2. **Mouth and Lips**: The teeth are blurred.";
        let mut fake = item("a", true, 0.9, Some(FaceSwap), Some(FaceSwap));
        fake.truth.explanation = Some(reference.into());
        fake.truth.artifacts = parse_artifacts(reference);
        fake.explanation = Some(reference.into());
        fake.artifacts = parse_artifacts(reference);
        fake.answers = vec![("It is blurred.".into(), "It is blurred.".into())];
        fake.slice = Some("ff++".into());
        let real = item("b", false, 0.1, None, Some(FaceEditing));
        let r = report(&[fake, real], 0.5, 0.01);
        assert_eq!(r.detection.accuracy, Some(1.0));
        assert_eq!(r.detection.roc_auc, Some(1.0));
        assert_eq!(r.classification.items, 1, "only fakes with a known type");
        assert_eq!(r.classification.accuracy, Some(1.0));
        let a = r.artifacts.expect("descriptions");
        assert!((a.bleu[3] - 100.0).abs() < 1e-9);
        assert!((a.rouge_l - 1.0).abs() < 1e-12);
        assert_eq!(a.region_f1, Some(1.0));
        assert!(r.conversation.is_some());
        assert_eq!(
            r.slices.keys().collect::<Vec<_>>(),
            ["source:ff++", "type:face_swap"]
        );
        assert!(r.slices["type:face_swap"].slices.is_empty());
    }

    #[test]
    fn a_missing_description_counts_as_empty_and_unscored_items_are_left_out() {
        let mut fake = item("a", true, 0.2, None, None);
        fake.truth.explanation = Some("1. **Eyes**: misaligned.".into());
        fake.truth.artifacts = parse_artifacts("1. **Eyes**: misaligned.");
        let mut unscored = item("c", true, 0.0, None, None);
        unscored.p_fake = None;
        let r = report(&[fake, unscored], 0.5, 0.01);
        assert_eq!(r.detection.items, 1);
        assert_eq!(r.detection.accuracy, Some(0.0));
        let a = r.artifacts.expect("one reference");
        assert_eq!((a.items, a.bleu[0], a.region_f1), (1, 0.0, Some(0.0)));
        assert!(r.conversation.is_none());
    }
}
