//! Dataset records (`domain::dataset`) as training items.

use std::path::Path;

use super::items::{ImageRef, Item, Origin};
use crate::domain::dataset::{parse_records, Record};
use crate::domain::prompts::Prompts;

pub use crate::domain::dataset::LineError;

/// The record as a training item.
pub fn into_item(record: Record) -> Item {
    Item {
        key: format!("dataset:{}", record.digest),
        origin: Origin::Dataset { line: record.line },
        image: ImageRef::File(record.image),
        // Dataset images are face crops already (DFA-Instruct).
        crop: None,
        turns: record.turns,
        history_per_turn: true,
        label: record.label,
        forgery_type: record.forgery_type,
    }
}

/// Parses a whole file's text; returns the training items and the bad lines.
pub fn parse_dataset(text: &str, base: &Path, prompts: &Prompts) -> (Vec<Item>, Vec<LineError>) {
    let (records, errors) = parse_records(text, base, prompts);
    (records.into_iter().map(into_item).collect(), errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ForgeryType, Label};

    #[test]
    fn parses_conversations_infers_labels_and_reports_bad_lines() {
        let p = Prompts::embedded();
        let text = [
            r#"{"id":"a","image":"img/a.png","conversations":[{"from":"human","value":"<image>\nHas this face been forged?"},{"from":"gpt","value":"Yes."},{"from":"human","value":"What kind of technique is used to manipulate the image?"},{"from":"gpt","value":"Face swapping is used."}]}"#,
            "",
            r#"{"id":"b","image":"/abs/b.png","label":"real","conversations":[{"from":"human","value":"<image>\nDescribe the face."},{"from":"gpt","value":"A smiling person."}]}"#,
            r#"{"id":"c","image":"c.png","conversations":[{"from":"human","value":"only a question"}]}"#,
            r#"{not json"#,
        ]
        .join("\n");
        let (items, errors) = parse_dataset(&text, Path::new("/data"), &p);
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].label, Some(Label::Fake));
        assert_eq!(items[0].forgery_type, Some(ForgeryType::FaceSwap));
        assert_eq!(items[0].image, ImageRef::File("/data/img/a.png".into()));
        assert_eq!(items[0].turns[0].question, "Has this face been forged?");
        assert_eq!(items[1].label, Some(Label::Real));
        assert_eq!(items[1].image, ImageRef::File("/abs/b.png".into()));
        assert_eq!(
            errors.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![4, 5]
        );
        assert_ne!(items[0].key, items[1].key);
    }

    #[test]
    fn an_item_asked_in_another_listed_phrasing_keeps_its_label_and_type() {
        let p = Prompts::embedded();
        let line = serde_json::json!({"image": "a.png", "conversations": [
            {"from": "human", "value": format!("<image>\n{}", p.detection.phrasings[1])},
            {"from": "gpt", "value": "Yes, it is fake."},
            {"from": "human", "value": p.classification.phrasings[3]},
            {"from": "gpt", "value": "The face was reenacted."}
        ]})
        .to_string();
        let (items, errors) = parse_dataset(&line, Path::new("/d"), &p);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(items[0].label, Some(Label::Fake));
        assert_eq!(items[0].forgery_type, Some(ForgeryType::FaceReenactment));
    }
}
