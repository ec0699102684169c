//! LLaVA-format instruction data (DFA-Instruct's format), one JSON object per
//! line: `{"id", "image": "path", "conversations": [{"from": "human",
//! "value": "<image>\nQuestion"}, {"from": "gpt", "value": "Answer"}, …]}`,
//! optionally with `"label"`, `"forgery_type"` and `"source"`. Image paths
//! are relative to the dataset file. Bad lines are reported with their line
//! numbers. Training (`learning::dataset`) and `dfa eval` read it.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::prompts::{Prompts, Turn};
use super::recognise::stated_label_and_type;
use super::{ForgeryType, Label};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct LineError {
    pub line: usize,
    pub reason: String,
}

#[derive(Deserialize)]
struct Wire {
    id: Option<serde_json::Value>,
    image: Option<String>,
    conversations: Vec<Message>,
    label: Option<Label>,
    forgery_type: Option<String>,
    /// The dataset an item comes from (FF++, Celeb-DF, …): a slice in `dfa eval`.
    source: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    from: String,
    value: String,
}

/// One dataset line, read: what training (`Item`) and evaluation
/// (`eval::EvalItem`) are built from.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub line: usize,
    /// The item's `id` (a string or number), else `line N`.
    pub id: String,
    pub source: Option<String>,
    /// Resolved against the dataset file's folder.
    pub image: PathBuf,
    pub turns: Vec<Turn>,
    /// The `label` field, else what the detection answer states.
    pub label: Option<Label>,
    /// The `forgery_type` field, else what the classification answer states.
    pub forgery_type: Option<ForgeryType>,
    /// A digest of the line: the item's stable identity (held-out split).
    pub digest: String,
}

/// Reads one line (1-based `line`); the error says what is wrong with it.
pub fn parse_record(
    text: &str,
    line: usize,
    base: &Path,
    prompts: &Prompts,
) -> Result<Record, String> {
    let wire: Wire =
        serde_json::from_str(text).map_err(|e| format!("not a LLaVA conversation: {e}"))?;
    let image = wire.image.ok_or("no `image`: every item needs an image")?;
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
    let (stated_label, stated_type) = stated_label_and_type(prompts, &turns);
    let forgery_type = match wire.forgery_type.as_deref() {
        Some(t) => Some(t.parse::<ForgeryType>().map_err(|e| e.to_string())?),
        None => stated_type,
    };
    let path = Path::new(&image);
    let image = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    let id = match wire.id {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s,
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => format!("line {line}"),
    };
    Ok(Record {
        line,
        id,
        source: wire.source.filter(|s| !s.trim().is_empty()),
        image,
        turns,
        label: wire.label.or(stated_label),
        forgery_type,
        digest: hex::encode(&Sha256::digest(text.trim().as_bytes())[..12]),
    })
}

/// Every line of a file's text, read; the records and the bad lines.
pub fn parse_records(text: &str, base: &Path, prompts: &Prompts) -> (Vec<Record>, Vec<LineError>) {
    let (mut records, mut errors) = (Vec::new(), Vec::new());
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        match parse_record(raw, i + 1, base, prompts) {
            Ok(r) => records.push(r),
            Err(reason) => errors.push(LineError {
                line: i + 1,
                reason,
            }),
        }
    }
    (records, errors)
}
