//! Reposts: the stored analyses of an image's exact bytes by one model, so
//! that the same upload seen again is not run through the model again.

use super::{Store, StoreError};
use crate::domain::{FaceMode, ModelIdentity};

/// At most this many earlier verdicts are read per lookup: the newest by
/// this model come first, and any of them will do.
const CANDIDATES: i64 = 4;

impl Store {
    /// The verdicts (JSON, as published) of the newest analyses of
    /// `image_sha256` for `tenant` made by `model`'s base, mmproj and
    /// adapter file in face mode `mode`, newest first. The caller checks the
    /// whole identity (adapter scale included) on the verdicts they hold.
    /// Only the same tenant's: a reused verdict names the one it came from,
    /// and another tenant must not learn that its bytes were seen before.
    pub async fn analyses_of_image(
        &self,
        image_sha256: &str,
        tenant: Option<&str>,
        model: &ModelIdentity,
        mode: FaceMode,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT (result -> 'verdict')::text FROM verdicts \
             WHERE image_sha256 = $1 AND base_model_sha256 = $2 AND mmproj_sha256 = $3 \
               AND adapter_sha256 IS NOT DISTINCT FROM $4 AND face_mode = $5 \
               AND tenant IS NOT DISTINCT FROM $7 \
             ORDER BY created_at DESC LIMIT $6",
        )
        .bind(image_sha256)
        .bind(&model.base_sha256)
        .bind(&model.mmproj_sha256)
        .bind(model.adapter.as_ref().map(|a| a.sha256.as_str()))
        .bind(mode.as_str())
        .bind(CANDIDATES)
        .bind(tenant)
        .fetch_all(self.pool())
        .await?)
    }
}
