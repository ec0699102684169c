//! The learning loop's tables: reviewers' corrections and the adapter registry.

use serde_json::Value;

use super::{Source, Store, StoreError};
use crate::domain::adapter::{AdapterRecord, AdapterRef, AdapterStatus, NewAdapter};
use crate::domain::correction::StandingCorrection;
use crate::domain::Correction;

/// What storing a correction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CorrectionWrite {
    Inserted,
    /// Replaced this reviewer's earlier correction of the verdict.
    Superseded,
    /// The same (or an older) correction was stored already.
    Unchanged,
    /// No verdict has this request_id.
    UnknownRequest,
}

impl CorrectionWrite {
    pub fn as_str(self) -> &'static str {
        match self {
            CorrectionWrite::Inserted => "inserted",
            CorrectionWrite::Superseded => "superseded",
            CorrectionWrite::Unchanged => "unchanged",
            CorrectionWrite::UnknownRequest => "unknown_request",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no adapter `{0}` in the registry")]
    NotFound(String),
    #[error("no adapter is active: nothing to roll back")]
    NothingActive,
}

impl From<sqlx::Error> for RegistryError {
    fn from(e: sqlx::Error) -> Self {
        RegistryError::Store(e.into())
    }
}

const ADAPTER_COLUMNS: &str = "id, path, sha256, base_model_sha256, parent_id, status, status_reason, scale, origin, \
     training_data, hyper_parameters, metrics, previous_active_id, mmproj_path, mmproj_sha256, created_at, promoted_at, \
     retired_at";

impl Store {
    /// Stores a correction once: the same message again changes nothing, and
    /// a later correction by the same reviewer supersedes the earlier one.
    pub async fn upsert_correction(
        &self,
        c: &Correction,
        source: &Source,
    ) -> Result<CorrectionWrite, StoreError> {
        let artifacts = c
            .artifacts
            .as_ref()
            .map(|a| serde_json::to_value(a).unwrap_or(Value::Null));
        let row: Result<Option<(bool,)>, sqlx::Error> = sqlx::query_as(
            "INSERT INTO corrections (request_id, reviewer, label, forgery_type, artifacts, note, created_at, \
                                      source_topic, source_partition, source_offset) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (request_id, reviewer) DO UPDATE SET \
                label = EXCLUDED.label, forgery_type = EXCLUDED.forgery_type, artifacts = EXCLUDED.artifacts, \
                note = EXCLUDED.note, created_at = EXCLUDED.created_at, received_at = now(), \
                source_topic = EXCLUDED.source_topic, source_partition = EXCLUDED.source_partition, \
                source_offset = EXCLUDED.source_offset, revision = nextval('correction_revisions') \
             WHERE corrections.created_at < EXCLUDED.created_at \
             RETURNING (xmax = 0)",
        )
        .bind(c.request_id)
        .bind(&c.reviewer)
        .bind(c.label)
        .bind(c.forgery_type)
        .bind(artifacts)
        .bind(&c.note)
        .bind(c.created_at)
        .bind(&source.topic)
        .bind(source.partition)
        .bind(source.offset)
        .fetch_optional(self.pool())
        .await;
        // One round trip: the foreign key to verdicts says when the request is unknown.
        let row = match row {
            Err(e)
                if e.as_database_error()
                    .and_then(|d| d.code())
                    .is_some_and(|code| code == "23503") =>
            {
                return Ok(CorrectionWrite::UnknownRequest)
            }
            other => other?,
        };
        Ok(match row {
            Some((true,)) => CorrectionWrite::Inserted,
            Some((false,)) => CorrectionWrite::Superseded,
            None => CorrectionWrite::Unchanged,
        })
    }

    /// The standing correction of every corrected verdict, with the crop
    /// of the verdict's primary face when it has one. A `no_face` verdict
    /// has no label and no face: its correction is of the whole image.
    pub async fn standing_corrections(&self) -> Result<Vec<StandingCorrection>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT DISTINCT ON (c.request_id) c.revision, c.request_id, c.reviewer, c.label, c.forgery_type, \
                    c.artifacts, c.note, v.image_sha256, v.label AS verdict_label, \
                    f.crop_x, f.crop_y, f.crop_side \
             FROM corrections c JOIN verdicts v USING (request_id) \
             LEFT JOIN faces f ON f.request_id = v.request_id AND f.face_index = v.primary_face \
             ORDER BY c.request_id, c.created_at DESC, c.revision DESC",
        )
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn insert_adapter(&self, a: &NewAdapter) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO adapters (id, path, sha256, base_model_sha256, parent_id, status, scale, origin, \
                                   training_data, hyper_parameters, mmproj_path, mmproj_sha256) \
             VALUES ($1, $2, $3, $4, $5, 'candidate', $6, $7, $8, $9, $10, $11)",
        )
        .bind(&a.id)
        .bind(&a.path)
        .bind(&a.sha256)
        .bind(&a.base_model_sha256)
        .bind(&a.parent_id)
        .bind(a.scale)
        .bind(a.origin)
        .bind(&a.training_data)
        .bind(&a.hyper_parameters)
        .bind(a.mmproj.as_ref().map(|m| &m.0))
        .bind(a.mmproj.as_ref().map(|m| &m.1))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn set_adapter_metrics(&self, id: &str, metrics: &Value) -> Result<(), StoreError> {
        sqlx::query("UPDATE adapters SET metrics = $2 WHERE id = $1")
            .bind(id)
            .bind(metrics)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn reject_adapter(&self, id: &str, reason: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE adapters SET status = 'rejected', status_reason = $2 WHERE id = $1")
            .bind(id)
            .bind(reason)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn active_adapter(&self) -> Result<Option<AdapterRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ADAPTER_COLUMNS} FROM adapters WHERE status = 'active'"
        ))
        .fetch_optional(self.pool())
        .await?)
    }

    /// The active adapter's file and scale (the workers' poll).
    pub async fn active_adapter_ref(&self) -> Result<Option<AdapterRef>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, path, sha256, scale, mmproj_path, mmproj_sha256 FROM adapters \
                 WHERE status = 'active'",
        )
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn adapter(&self, id: &str) -> Result<Option<AdapterRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ADAPTER_COLUMNS} FROM adapters WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }

    pub async fn list_adapters(&self) -> Result<Vec<AdapterRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {ADAPTER_COLUMNS} FROM adapters ORDER BY created_at, id"
        ))
        .fetch_all(self.pool())
        .await?)
    }

    /// Makes `id` the active adapter, retiring the one active before; that
    /// one is remembered as the rollback target.
    pub async fn promote_adapter(&self, id: &str, reason: &str) -> Result<(), RegistryError> {
        let mut tx = self.pool().begin().await?;
        // Serialises promotions and rollbacks against each other.
        sqlx::query("LOCK TABLE adapters IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let exists: Option<(AdapterStatus,)> =
            sqlx::query_as("SELECT status FROM adapters WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        match exists {
            None => return Err(RegistryError::NotFound(id.to_string())),
            Some((AdapterStatus::Active,)) => return Ok(()),
            Some(_) => {}
        }
        let previous: Option<(String,)> = sqlx::query_as(
            "UPDATE adapters SET status = 'retired', retired_at = now() WHERE status = 'active' RETURNING id",
        )
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE adapters SET status = 'active', status_reason = $2, promoted_at = now(), retired_at = NULL, \
                    previous_active_id = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(reason)
        .bind(previous.map(|p| p.0))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Retires the active adapter and re-activates the one it replaced (none:
    /// the workers serve the base model). Returns (retired, restored).
    pub async fn rollback_adapter(&self) -> Result<(String, Option<String>), RegistryError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("LOCK TABLE adapters IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let current: Option<(String, Option<String>)> = sqlx::query_as(
            "UPDATE adapters SET status = 'retired', retired_at = now(), status_reason = 'rolled back' \
             WHERE status = 'active' RETURNING id, previous_active_id",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let (retired, previous) = current.ok_or(RegistryError::NothingActive)?;
        if let Some(p) = &previous {
            sqlx::query(
                "UPDATE adapters SET status = 'active', status_reason = 'restored by rollback', \
                        promoted_at = now(), retired_at = NULL WHERE id = $1",
            )
            .bind(p)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok((retired, previous))
    }
}
