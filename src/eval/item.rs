//! An evaluation item: the image, what the dataset says about it (`Truth`),
//! and the free-conversation turns to ask with their reference answers.

use std::path::PathBuf;

use crate::domain::dataset::Record;
use crate::domain::prompts::{Prompts, Turn};
use crate::domain::recognise::{recognise, Recognised};
use crate::metrics::report::Truth;

#[derive(Debug, Clone, PartialEq)]
pub struct EvalItem {
    pub id: String,
    /// The dataset line it came from (1-based).
    pub line: usize,
    pub source: Option<String>,
    pub image: PathBuf,
    pub truth: Truth,
    /// Turns that are none of the three tasks, in order: their questions are
    /// asked, their answers are the references.
    pub conversation: Vec<Turn>,
}

impl EvalItem {
    pub fn from_record(record: Record, prompts: &Prompts) -> EvalItem {
        let mut truth = Truth {
            label: record.label,
            forgery_type: record.forgery_type,
            ..Truth::default()
        };
        let mut conversation = Vec::new();
        for turn in record.turns {
            match recognise(prompts, &turn) {
                Recognised::Artifacts(artifacts) => {
                    truth.explanation = Some(turn.answer);
                    truth.artifacts = artifacts;
                }
                Recognised::Conversation => conversation.push(turn),
                Recognised::Detection(_) | Recognised::Classification(_) => {}
            }
        }
        EvalItem {
            id: record.id,
            line: record.line,
            source: record.source,
            image: record.image,
            truth,
            conversation,
        }
    }

    /// Whether the model is asked for an artifact description: only where
    /// there is a reference to score it against.
    pub fn wants_explanation(&self) -> bool {
        self.truth.explanation.is_some()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::domain::dataset::parse_records;
    use crate::domain::{ForgeryType, Label};

    #[test]
    fn sorts_turns_into_truth_and_conversation() {
        let p = Prompts::embedded();
        let line = serde_json::json!({
            "id": 17, "image": "a.png", "source": "FF++",
            "conversations": [
                {"from": "human", "value": "<image>\nHas this face been forged?"},
                {"from": "gpt", "value": "Yes."},
                {"from": "human", "value": p.classification.question},
                {"from": "gpt", "value": "Face editing is used."},
                {"from": "human", "value": p.artifacts.question},
                {"from": "gpt", "value": "1. **Eyes**: mismatched reflections.\n2. **Mouth**: blurred teeth."},
                {"from": "human", "value": "Why does the mouth look wrong?"},
                {"from": "gpt", "value": "The teeth are blurred."}
            ]
        })
        .to_string();
        let (records, errors) = parse_records(&line, Path::new("/d"), &p);
        assert!(errors.is_empty(), "{errors:?}");
        let item = EvalItem::from_record(records.into_iter().next().unwrap(), &p);
        assert_eq!(item.id, "17");
        assert_eq!(item.source.as_deref(), Some("FF++"));
        assert_eq!(item.image, Path::new("/d/a.png"));
        assert_eq!(item.truth.label, Some(Label::Fake));
        assert_eq!(item.truth.forgery_type, Some(ForgeryType::FaceEditing));
        assert_eq!(item.truth.artifacts.len(), 2);
        assert!(item.wants_explanation());
        assert_eq!(item.conversation.len(), 1);
        assert_eq!(item.conversation[0].answer, "The teeth are blurred.");
    }
}
