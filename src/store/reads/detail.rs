//! One verdict as its detail page shows it, and every correction of it.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::super::{Store, StoreError};
use crate::domain::{ForgeryType, Label};

/// A stored verdict's own fields (not the raw result message, nor where
/// the request came from).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VerdictDetail {
    pub request_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub tenant: Option<String>,
    /// `analysed` or `no_face` (`domain::VerdictStatus`).
    pub status: String,
    /// None (with p_fake and type_scores) only for `no_face`.
    pub label: Option<Label>,
    pub p_fake: Option<f32>,
    pub forgery_type: Option<ForgeryType>,
    pub type_scores: Option<Value>,
    pub artifacts: Value,
    pub explanation: Option<String>,
    pub answers: Value,
    pub image_sha256: String,
    pub image_source: String,
    pub base_model_sha256: String,
    pub mmproj_sha256: String,
    pub adapter_id: Option<String>,
    pub adapter_sha256: Option<String>,
    pub processing_ms: f64,
    pub metadata: Value,
    /// `detect`, `whole_image` or `off` (`domain::FaceMode`).
    pub face_mode: String,
    pub face_count: Option<i32>,
    /// The face the verdict carries (`faces.face_index`).
    pub primary_face: Option<i16>,
    /// `{"too_small": n, "over_cap": n}`.
    pub faces_skipped: Value,
    /// The verdict whose analysis of the same bytes this one reused.
    pub reused_from: Option<Uuid>,
}

/// A reviewer's standing correction of a verdict.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CorrectionRecord {
    pub reviewer: String,
    pub label: Label,
    pub forgery_type: Option<ForgeryType>,
    pub artifacts: Option<Value>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Store {
    pub async fn verdict_detail(
        &self,
        request_id: Uuid,
    ) -> Result<Option<VerdictDetail>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT request_id, created_at, tenant, status, label, p_fake, forgery_type, type_scores, \
                    artifacts, explanation, answers, image_sha256, image_source, base_model_sha256, \
                    mmproj_sha256, adapter_id, adapter_sha256, processing_ms, metadata, face_mode, \
                    face_count, primary_face, faces_skipped, reused_from \
             FROM verdicts WHERE request_id = $1",
        )
        .bind(request_id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Each reviewer's correction of the verdict, oldest first: the last
    /// one is the standing correction.
    pub async fn corrections_of(
        &self,
        request_id: Uuid,
    ) -> Result<Vec<CorrectionRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT reviewer, label, forgery_type, artifacts, note, created_at FROM corrections \
             WHERE request_id = $1 ORDER BY created_at, revision",
        )
        .bind(request_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// The tenant and image of a verdict, if it exists.
    pub async fn verdict_image_ref(
        &self,
        request_id: Uuid,
    ) -> Result<Option<(Option<String>, String)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT tenant, image_sha256 FROM verdicts WHERE request_id = $1")
                .bind(request_id)
                .fetch_optional(self.pool())
                .await?,
        )
    }
}
