//! What the image store's retention asks of the database: which images are
//! training data (behind a corrected verdict) and must be kept.

use std::collections::HashSet;

use super::{Store, StoreError};

impl Store {
    /// Those of `sha256s` that are the image of at least one verdict with a
    /// correction. The answer is at most as large as the question: callers
    /// ask in pages (the retention sweep asks per shard, in pages of
    /// `images::retention::LOOKUP_PAGE`), never for the whole store.
    pub async fn corrected_images(
        &self,
        sha256s: &[String],
    ) -> Result<HashSet<String>, StoreError> {
        if sha256s.is_empty() {
            return Ok(HashSet::new());
        }
        // verdicts_image_sha256 finds the verdicts; corrections' unique
        // (request_id, reviewer) index answers the EXISTS.
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT v.image_sha256 FROM verdicts v \
             WHERE v.image_sha256 = ANY($1) \
               AND EXISTS (SELECT 1 FROM corrections c WHERE c.request_id = v.request_id)",
        )
        .bind(sha256s)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}
