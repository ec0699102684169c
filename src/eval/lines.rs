//! `predictions.jsonl`: one line per evaluated item, holding everything the
//! report is computed from (truth, scores, generated text, references), so
//! anyone can recompute every number, and `--compare` can reuse a run.

use serde::{Deserialize, Serialize};

use super::EvalItem;
use crate::domain::{parse_artifacts, ForgeryType, Label, TypeScores};
use crate::metrics::report::{Prediction, Truth};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionLine {
    pub id: String,
    pub line: usize,
    pub source: Option<String>,
    pub truth_label: Option<Label>,
    pub truth_type: Option<ForgeryType>,
    /// The reference artifact description, when the item has one.
    pub reference_explanation: Option<String>,
    pub p_fake: Option<f64>,
    /// `fake` when p_fake reaches the threshold of the run.
    pub label: Option<Label>,
    pub type_scores: Option<TypeScores>,
    /// The most likely type by the type scores.
    pub predicted_type: Option<ForgeryType>,
    pub explanation: Option<String>,
    pub artifacts: Vec<crate::domain::Artifact>,
    pub answers: Vec<AnswerLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerLine {
    pub question: String,
    pub reference: String,
    pub generated: String,
}

impl PredictionLine {
    pub fn new(item: &EvalItem, p: &Prediction, threshold: f64) -> PredictionLine {
        PredictionLine {
            id: p.id.clone(),
            line: item.line,
            source: p.slice.clone(),
            truth_label: p.truth.label,
            truth_type: p.truth.forgery_type,
            reference_explanation: p.truth.explanation.clone(),
            p_fake: p.p_fake,
            label: p.p_fake.map(|x| {
                if x >= threshold {
                    Label::Fake
                } else {
                    Label::Real
                }
            }),
            type_scores: p.type_scores,
            predicted_type: p.forgery_type,
            explanation: p.explanation.clone(),
            artifacts: p.artifacts.clone(),
            answers: item
                .conversation
                .iter()
                .zip(&p.answers)
                .map(|(turn, (reference, generated))| AnswerLine {
                    question: turn.question.clone(),
                    reference: reference.clone(),
                    generated: generated.clone(),
                })
                .collect(),
        }
    }

    /// The prediction this line records (reading an earlier run back).
    pub fn prediction(&self) -> Prediction {
        Prediction {
            id: self.id.clone(),
            slice: self.source.clone(),
            truth: Truth {
                label: self.truth_label,
                forgery_type: self.truth_type,
                artifacts: self
                    .reference_explanation
                    .as_deref()
                    .map(parse_artifacts)
                    .unwrap_or_default(),
                explanation: self.reference_explanation.clone(),
            },
            p_fake: self.p_fake,
            type_scores: self.type_scores,
            forgery_type: self.predicted_type,
            explanation: self.explanation.clone(),
            artifacts: self.artifacts.clone(),
            answers: self
                .answers
                .iter()
                .map(|a| (a.reference.clone(), a.generated.clone()))
                .collect(),
        }
    }
}

/// Reads `predictions.jsonl`; a bad line is an error naming it.
pub fn read_lines(text: &str) -> Result<Vec<PredictionLine>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::prompts::Turn;

    #[test]
    fn a_line_gives_back_the_prediction_it_was_written_from() {
        let item = EvalItem {
            id: "a".into(),
            line: 3,
            source: Some("ff".into()),
            image: "a.png".into(),
            truth: Truth {
                label: Some(Label::Fake),
                forgery_type: Some(ForgeryType::FaceSwap),
                explanation: Some("1. **Eyes**: odd.".into()),
                artifacts: parse_artifacts("1. **Eyes**: odd."),
            },
            conversation: vec![Turn {
                question: "Why?".into(),
                answer: "Because.".into(),
            }],
        };
        let p = Prediction {
            id: "a".into(),
            slice: Some("ff".into()),
            truth: item.truth.clone(),
            p_fake: Some(0.7),
            type_scores: Some(TypeScores::from_array([0.1, 0.2, 0.3, 0.4])),
            forgery_type: Some(ForgeryType::EntireFaceSynthesis),
            explanation: Some("1. **Mouth**: blur.".into()),
            artifacts: parse_artifacts("1. **Mouth**: blur."),
            answers: vec![("Because.".into(), "No idea.".into())],
        };
        let line = PredictionLine::new(&item, &p, 0.5);
        assert_eq!(line.label, Some(Label::Fake));
        assert_eq!(line.answers[0].question, "Why?");
        let text = serde_json::to_string(&line).unwrap();
        let back = read_lines(&format!("{text}\n\n{text}")).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].prediction(), p);
        assert!(read_lines("{\"id\": 1}")
            .unwrap_err()
            .starts_with("line 1:"));
    }
}
