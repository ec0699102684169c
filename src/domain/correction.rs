//! A reviewer's correction of a stored verdict, as the feedback topic carries
//! it once validated. Training reads the standing correction of each verdict.

use chrono::{DateTime, Utc};
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
