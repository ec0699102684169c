//! Analysts' and reviewers' reads of stored verdicts: filtered pages in
//! keyset order, the rows of an export streamed as they come, one verdict
//! with its corrections (`detail`), and statistics (`stats`). Every value
//! of a filter is a bind parameter (`push_bind`), never SQL text.

mod detail;
mod queue;
mod stats;

pub use detail::{CorrectionRecord, VerdictDetail};
pub use queue::QueueRow;
pub use stats::{AdapterCounts, BucketCount};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use sqlx::{Postgres, QueryBuilder};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::domain::verdict_query::{Keyset, VerdictFilter};
use crate::domain::{ForgeryType, Label, VerdictStatus};

/// A verdict as lists and exports show it, with what reviewers said of it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct VerdictRow {
    pub request_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub tenant: Option<String>,
    /// `analysed` or `no_face` (`domain::VerdictStatus`).
    pub status: String,
    /// None (with p_fake) only for a `no_face` verdict: nothing was screened.
    pub label: Option<Label>,
    pub p_fake: Option<f32>,
    pub forgery_type: Option<ForgeryType>,
    /// Faces analysed; None when the verdict was made without detection.
    pub face_count: Option<i32>,
    pub adapter_id: Option<String>,
    pub image_sha256: String,
    pub explanation: Option<String>,
    /// The standing (latest) correction's label; None: not corrected.
    pub correction_label: Option<Label>,
    pub correction_forgery_type: Option<ForgeryType>,
    /// Whether any reviewer's correction contradicts the verdict.
    pub disagreement: bool,
}

impl VerdictRow {
    /// Where the page after this row starts.
    pub fn keyset(&self) -> Keyset {
        Keyset {
            created_at: self.created_at,
            request_id: self.request_id,
        }
    }
}

/// Some reviewer corrected verdict `v`.
const CORRECTED: &str = "EXISTS (SELECT 1 FROM corrections d WHERE d.request_id = v.request_id)";

/// A correction `d` contradicting verdict `v`
/// (`domain::verdict_query::contradicts`). A `no_face` verdict (no label)
/// claimed nothing, so no correction contradicts it.
const CONTRADICTS: &str =
    "(v.label IS NOT NULL AND (d.label <> v.label OR (d.forgery_type IS NOT NULL \
     AND d.forgery_type IS DISTINCT FROM v.forgery_type)))";

/// ` AND …` for every condition of `f` on verdicts `v`.
pub(super) fn push_filter<'a>(q: &mut QueryBuilder<'a, Postgres>, f: &'a VerdictFilter) {
    if let Some(t) = f.since {
        q.push(" AND v.created_at >= ").push_bind(t);
    }
    if let Some(t) = f.until {
        q.push(" AND v.created_at < ").push_bind(t);
    }
    if let Some(l) = f.label {
        q.push(" AND v.label = ").push_bind(l.as_str());
    }
    if let Some(t) = f.forgery_type {
        q.push(" AND v.forgery_type = ").push_bind(t.as_str());
    }
    // p_fake is NULL exactly for `no_face` (migration 0007's check), and
    // unlike `status` it is among the index's INCLUDE columns.
    if let Some(s) = f.status {
        q.push(match s {
            VerdictStatus::NoFace => " AND v.p_fake IS NULL",
            VerdictStatus::Analysed => " AND v.p_fake IS NOT NULL",
        });
    }
    if let Some(t) = &f.tenant {
        q.push(" AND v.tenant = ").push_bind(t.as_str());
    }
    if let Some(p) = f.min_p_fake {
        q.push(" AND v.p_fake >= ").push_bind(p);
    }
    if let Some(p) = f.max_p_fake {
        q.push(" AND v.p_fake <= ").push_bind(p);
    }
    if let Some(a) = &f.adapter {
        q.push(" AND v.adapter_id = ").push_bind(a.as_str());
    }
    // EXISTS lets the planner start from the (few) corrections.
    if let Some(c) = f.corrected {
        q.push(if c { " AND " } else { " AND NOT " });
        q.push(CORRECTED);
    }
    if let Some(d) = f.disagreement {
        q.push(if d { " AND " } else { " AND NOT " });
        q.push(format!(
            "EXISTS (SELECT 1 FROM corrections d WHERE d.request_id = v.request_id AND {CONTRADICTS})"
        ));
    }
}

/// The page query: `filter`, after `after`, newest first, `limit` rows (a
/// negative `limit`: all); with `explain`, its `EXPLAIN`. The rows are
/// chosen first, then each served row gets its standing correction (one
/// index probe on corrections_request_id_latest) and its disagreement:
/// the planner then picks the rows' plan as for a bare query.
fn page_query(
    explain: bool,
    filter: &VerdictFilter,
    after: Option<Keyset>,
    limit: i64,
) -> QueryBuilder<'_, Postgres> {
    let mut q = QueryBuilder::new(format!(
        "{}SELECT v.request_id, v.created_at, v.tenant, v.status, v.label, v.p_fake, v.forgery_type, \
                v.face_count, v.adapter_id, v.image_sha256, v.explanation, s.label AS correction_label, \
                s.forgery_type AS correction_forgery_type, \
                EXISTS (SELECT 1 FROM corrections d WHERE d.request_id = v.request_id AND {CONTRADICTS}) \
                    AS disagreement \
         FROM (SELECT v.request_id, v.created_at, v.tenant, v.status, v.label, v.p_fake, \
                      v.forgery_type, v.face_count, v.adapter_id, v.image_sha256, v.explanation \
               FROM verdicts v WHERE true",
        if explain { "EXPLAIN " } else { "" }
    ));
    push_filter(&mut q, filter);
    if let Some(k) = after {
        q.push(" AND (v.created_at, v.request_id) < (")
            .push_bind(k.created_at)
            .push(", ")
            .push_bind(k.request_id)
            .push(")");
    }
    q.push(" ORDER BY v.created_at DESC, v.request_id DESC");
    if limit >= 0 {
        q.push(" LIMIT ").push_bind(limit);
    }
    q.push(
        ") v \
         LEFT JOIN LATERAL (SELECT c.label, c.forgery_type FROM corrections c \
             WHERE c.request_id = v.request_id ORDER BY c.created_at DESC, c.revision DESC LIMIT 1) s ON true \
         ORDER BY v.created_at DESC, v.request_id DESC",
    );
    q
}

impl Store {
    /// Up to `limit` verdicts matching `filter` that come after `after`,
    /// newest first by (created_at, request_id).
    pub async fn verdict_page(
        &self,
        filter: &VerdictFilter,
        after: Option<Keyset>,
        limit: u32,
    ) -> Result<Vec<VerdictRow>, StoreError> {
        Ok(page_query(false, filter, after, i64::from(limit))
            .build_query_as::<VerdictRow>()
            .fetch_all(self.pool())
            .await?)
    }

    /// The plan Postgres picks for that page (`EXPLAIN`, one line per
    /// node): what tests and `dfa bench --serve` check the indexes with.
    pub async fn explain_verdict_page(
        &self,
        filter: &VerdictFilter,
        after: Option<Keyset>,
        limit: u32,
    ) -> Result<String, StoreError> {
        let lines: Vec<String> = page_query(true, filter, after, i64::from(limit))
            .build_query_scalar()
            .fetch_all(self.pool())
            .await?;
        Ok(lines.join("\n"))
    }

    /// Every verdict matching `filter`, newest first, sent row by row into
    /// `rows` as Postgres returns them: memory stays at the channel's
    /// bound whatever the count. Returns when all are sent, at the first
    /// error (sent as the last item), or when the receiver is dropped.
    pub async fn send_verdicts(
        &self,
        filter: &VerdictFilter,
        rows: mpsc::Sender<Result<VerdictRow, StoreError>>,
    ) {
        let mut q = page_query(false, filter, None, -1);
        let mut stream = q.build_query_as::<VerdictRow>().fetch(self.pool());
        while let Some(row) = stream.next().await {
            let failed = row.is_err();
            if rows.send(row.map_err(StoreError::from)).await.is_err() || failed {
                return;
            }
        }
    }
}
