//! A reviewer's correction of a stored verdict, as the feedback topic carries
//! it once validated. Training reads the standing correction of each verdict.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::verdict::{Artifact, ForgeryType, Label};

/// A validated correction.
#[derive(Debug, Clone, PartialEq)]
pub struct Correction {
    pub request_id: Uuid,
    pub reviewer: String,
    pub label: Label,
    pub forgery_type: Option<ForgeryType>,
    pub artifacts: Option<Vec<Artifact>>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The standing correction of a verdict (the latest by any reviewer), with
/// what training needs from the verdict.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StandingCorrection {
    pub revision: i64,
    pub request_id: Uuid,
    pub reviewer: String,
    pub label: Label,
    pub forgery_type: Option<ForgeryType>,
    pub artifacts: Option<Value>,
    pub note: Option<String>,
    pub image_sha256: String,
    /// The label the model gave, which the correction may contradict.
    pub verdict_label: Label,
}
