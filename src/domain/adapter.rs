//! The adapter registry's records: every LoRA adapter trained or imported,
//! its lifecycle status, and what serving needs of the active one.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where an adapter is in its lifecycle. At most one is `active`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum AdapterStatus {
    /// Registered, not (yet) promoted.
    Candidate,
    Active,
    /// Failed the gate or a check; never served.
    Rejected,
    /// Was active, replaced by a promotion or rollback.
    Retired,
}

/// How an adapter came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum AdapterOrigin {
    /// `dfa retrain`.
    Retrain,
    /// `dfa lora import` of a PEFT adapter.
    Import,
}

/// A registry entry, as stored.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct AdapterRecord {
    pub id: String,
    pub path: String,
    pub sha256: String,
    pub base_model_sha256: String,
    pub parent_id: Option<String>,
    pub status: AdapterStatus,
    pub status_reason: Option<String>,
    pub scale: f32,
    pub origin: AdapterOrigin,
    pub training_data: Value,
    pub hyper_parameters: Value,
    pub metrics: Value,
    pub previous_active_id: Option<String>,
    /// The projector trained with the LoRA (adapter store path), if any.
    pub mmproj_path: Option<String>,
    pub mmproj_sha256: Option<String>,
    pub created_at: DateTime<Utc>,
    pub promoted_at: Option<DateTime<Utc>>,
    pub retired_at: Option<DateTime<Utc>>,
}

/// What serving needs of a registry entry: polled by every worker, so it
/// leaves out the (possibly large) training-data snapshot.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AdapterRef {
    pub id: String,
    pub path: String,
    pub sha256: String,
    pub scale: f32,
    pub mmproj_path: Option<String>,
    pub mmproj_sha256: Option<String>,
}

impl From<&AdapterRecord> for AdapterRef {
    fn from(row: &AdapterRecord) -> AdapterRef {
        AdapterRef {
            id: row.id.clone(),
            path: row.path.clone(),
            sha256: row.sha256.clone(),
            scale: row.scale,
            mmproj_path: row.mmproj_path.clone(),
            mmproj_sha256: row.mmproj_sha256.clone(),
        }
    }
}

/// A new registry entry (always a candidate first).
#[derive(Debug, Clone)]
pub struct NewAdapter {
    pub id: String,
    pub path: String,
    pub sha256: String,
    pub base_model_sha256: String,
    pub parent_id: Option<String>,
    pub scale: f32,
    pub origin: AdapterOrigin,
    pub training_data: Value,
    pub hyper_parameters: Value,
    /// The projector trained with it: (adapter store path, sha256).
    pub mmproj: Option<(String, String)>,
}

/// A LoRA adapter to apply, with the id verdicts will name it by, and the
/// projector trained with it (DFA-GPT's recipe trains both).
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterSpec {
    pub id: String,
    pub path: PathBuf,
    pub scale: f32,
    /// An mmproj GGUF to serve with this adapter instead of the configured
    /// `model.mmproj`; None: the configured one.
    pub mmproj: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_origin_use_the_stored_names() {
        assert_eq!(
            serde_json::to_value(AdapterStatus::Retired).unwrap(),
            "retired"
        );
        assert_eq!(
            serde_json::to_value(AdapterOrigin::Import).unwrap(),
            "import"
        );
    }
}
