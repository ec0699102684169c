//! LLaVA-format instruction data (DFA-Instruct's format), one JSON object per
//! line: `{"id", "image": "path", "conversations": [{"from": "human",
//! "value": "<image>\nQuestion"}, {"from": "gpt", "value": "Answer"}, …]}`,
//! optionally with `"label"` and `"forgery_type"`. Image paths are relative
//! to the dataset file. Bad lines are reported with their line numbers.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::items::{ImageRef, Item, Origin};
use crate::domain::prompts::{Prompts, Turn};
use crate::domain::{ForgeryType, Label};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct LineError {
    pub line: usize,
    pub reason: String,
}

#[derive(Deserialize)]
struct Wire {
    image: Option<String>,
    conversations: Vec<Message>,
    label: Option<Label>,
    forgery_type: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    from: String,
    value: String,
}

fn same_text(a: &str, b: &str) -> bool {
    a.trim()
        .trim_end_matches(['.', '?'])
        .eq_ignore_ascii_case(b.trim().trim_end_matches(['.', '?']))
}

/// The label and type a conversation states in the serving prompts' words.
fn infer(prompts: &Prompts, turns: &[Turn]) -> (Option<Label>, Option<ForgeryType>) {
    let (mut label, mut ty) = (None, None);
    let starts = |answer: &str, word: &str| {
        answer
            .trim()
            .to_lowercase()
            .starts_with(&word.trim().to_lowercase())
    };
    for t in turns {
        if same_text(&t.question, &prompts.detection.question) {
            if starts(&t.answer, &prompts.detection.yes) {
                label = Some(Label::Fake);
            } else if starts(&t.answer, &prompts.detection.no) {
                label = Some(Label::Real);
            }
        }
        if same_text(&t.question, &prompts.classification.question) {
            let answers = prompts.classification.answers.as_array();
            if let Some(i) = answers.iter().position(|a| same_text(a, &t.answer)) {
                ty = Some(ForgeryType::ALL[i]);
            }
        }
    }
    (label, ty)
}

fn parse_line(text: &str, line: usize, base: &Path, prompts: &Prompts) -> Result<Item, String> {
    let wire: Wire =
        serde_json::from_str(text).map_err(|e| format!("not a LLaVA conversation: {e}"))?;
    let image = wire
        .image
        .ok_or("no `image`: the trainer needs an image per item")?;
    if wire.conversations.is_empty() || !wire.conversations.len().is_multiple_of(2) {
        return Err("`conversations` must alternate human and gpt messages, in pairs".into());
    }
    let mut turns = Vec::new();
    for pair in wire.conversations.chunks(2) {
        let (q, a) = (&pair[0], &pair[1]);
        if q.from != "human" || a.from != "gpt" {
            return Err(format!(
                "expected a human then a gpt message, got `{}` then `{}`",
                q.from, a.from
            ));
        }
        // Our prompt rendering puts the image marker itself.
        let question = q.value.replace("<image>", "").trim().to_string();
        if question.is_empty() || a.value.trim().is_empty() {
            return Err("empty question or answer".into());
        }
        turns.push(Turn {
            question,
            answer: a.value.trim().to_string(),
        });
    }
    let (inferred_label, inferred_type) = infer(prompts, &turns);
    let forgery_type = match wire.forgery_type.as_deref() {
        Some(t) => Some(t.parse::<ForgeryType>().map_err(|e| e.to_string())?),
        None => inferred_type,
    };
    let path = Path::new(&image);
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    let digest = hex::encode(&Sha256::digest(text.trim().as_bytes())[..12]);
    Ok(Item {
        key: format!("dataset:{digest}"),
        origin: Origin::Dataset { line },
        image: ImageRef::File(path),
        // Dataset images are face crops already (DFA-Instruct).
        crop: None,
        turns,
        history_per_turn: true,
        label: wire.label.or(inferred_label),
        forgery_type,
    })
}

/// Parses a whole file's text; returns the items and the bad lines.
pub fn parse_dataset(text: &str, base: &Path, prompts: &Prompts) -> (Vec<Item>, Vec<LineError>) {
    let (mut items, mut errors) = (Vec::new(), Vec::new());
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        match parse_line(raw, i + 1, base, prompts) {
            Ok(item) => items.push(item),
            Err(reason) => errors.push(LineError {
                line: i + 1,
                reason,
            }),
        }
    }
    (items, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
