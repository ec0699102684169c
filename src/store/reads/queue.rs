//! The reviewers' queue (`domain::verdict_query::queue`): flagged first,
//! uncorrected before corrected, newest first.
//!
//! Ordering by the class expression itself would make Postgres compute it
//! for every matching verdict and sort them all before the first row. So a
//! page is read class by class instead: each class is one query walking
//! the (created_at, request_id) index backwards, whose condition on label
//! and p_fake the index's INCLUDE columns answer, with an anti- or
//! semi-join probe on corrections, stopping at the page's size; the next
//! class fills what is left of the page. At most four short queries.
//!
//! Measured (EXPLAIN ANALYZE, Postgres 15, a million verdicts of which about
//! half are flagged, 1 004 corrected): a 51-row page of each class takes
//! 0.1 ms (uncorrected: index-only scan backwards, anti-join probe) to 8 ms
//! (corrected: the planner starts from the few corrections and sorts them;
//! with 100 000 corrections it walks the index with a semi-join instead,
//! 0.7 ms). One query ordered by the class expression took 960 ms: a sort of
//! every row. The slow case left is a class that the filters leave empty:
//! its query walks the whole index before it knows (170 to 200 ms).

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

use super::super::{Store, StoreError};
use super::{push_filter, CORRECTED};
use crate::domain::verdict_query::{Flagging, Keyset, QueueClass, QueueKey, VerdictFilter};
use crate::domain::{ForgeryType, Label};

/// A verdict as a queue row shows it: what the (created_at, request_id)
/// index carries, and whether it is flagged and corrected.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct QueueRow {
    pub request_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub tenant: Option<String>,
    /// None (with p_fake) for a `no_face` verdict: nothing was screened.
    pub label: Option<Label>,
    pub p_fake: Option<f32>,
    pub forgery_type: Option<ForgeryType>,
    pub flagged: bool,
    pub corrected: bool,
}

impl QueueRow {
    pub fn class(&self) -> QueueClass {
        QueueClass::of(self.flagged, self.corrected)
    }

    /// Its place in the queue: the next page starts after it.
    pub fn key(&self) -> QueueKey {
        QueueKey {
            class: self.class(),
            at: Keyset {
                created_at: self.created_at,
                request_id: self.request_id,
            },
        }
    }
}

/// `(v.label = 'fake' OR p_fake in the band)`, the band's ends bound as
/// REAL like the column, so the comparison is `Flagging::flags`'s. NULL,
/// not false, for a `no_face` verdict (no label, no p_fake): callers say
/// what that means.
fn push_flagged(q: &mut QueryBuilder<'_, Postgres>, rule: Flagging) {
    let (lo, hi) = rule.band();
    q.push("(v.label = 'fake' OR (v.p_fake >= ")
        .push_bind(lo)
        .push(" AND v.p_fake <= ")
        .push_bind(hi)
        .push("))");
}

/// ` AND …` for the verdicts of `class`. A `no_face` verdict, whose flag
/// is NULL, is not flagged: `IS NOT TRUE` keeps it where `NOT` would drop
/// it from every class.
fn push_class(q: &mut QueryBuilder<'_, Postgres>, rule: Flagging, class: QueueClass) {
    q.push(" AND ");
    push_flagged(q, rule);
    if !class.flagged() {
        q.push(" IS NOT TRUE");
    }
    q.push(if class.corrected() {
        " AND "
    } else {
        " AND NOT "
    });
    q.push(CORRECTED);
}

/// The rows of one class after `after` (within the class), newest first.
fn class_query<'a>(
    filter: &'a VerdictFilter,
    rule: Flagging,
    class: QueueClass,
    after: Option<Keyset>,
    limit: i64,
) -> QueryBuilder<'a, Postgres> {
    let mut q = QueryBuilder::new(format!(
        "SELECT v.request_id, v.created_at, v.tenant, v.label, v.p_fake, v.forgery_type, \
                {} AS flagged, {} AS corrected \
         FROM verdicts v WHERE true",
        class.flagged(),
        class.corrected()
    ));
    push_class(&mut q, rule, class);
    push_filter(&mut q, filter);
    if let Some(k) = after {
        q.push(" AND (v.created_at, v.request_id) < (")
            .push_bind(k.created_at)
            .push(", ")
            .push_bind(k.request_id)
            .push(")");
    }
    q.push(" ORDER BY v.created_at DESC, v.request_id DESC LIMIT ")
        .push_bind(limit);
    q
}

impl Store {
    /// Up to `limit` verdicts matching `filter` after `after` in queue
    /// order (from the top without it).
    pub async fn queue_page(
        &self,
        filter: &VerdictFilter,
        rule: Flagging,
        after: Option<QueueKey>,
        limit: u32,
    ) -> Result<Vec<QueueRow>, StoreError> {
        let first = after.map_or(QueueClass::FlaggedTodo, |k| k.class);
        let mut rows: Vec<QueueRow> = Vec::new();
        for class in first.and_after() {
            let left = i64::from(limit) - rows.len() as i64;
            if left <= 0 {
                break;
            }
            let within = after.filter(|k| k.class == class).map(|k| k.at);
            let more = class_query(filter, rule, class, within, left)
                .build_query_as::<QueueRow>()
                .fetch_all(self.pool())
                .await?;
            rows.extend(more);
        }
        Ok(rows)
    }

    /// How many verdicts matching `filter` are in `class`, counting no
    /// further than `cap` (a full count of a large class would scan it all).
    pub async fn queue_count(
        &self,
        filter: &VerdictFilter,
        rule: Flagging,
        class: QueueClass,
        cap: u32,
    ) -> Result<u32, StoreError> {
        let mut q = QueryBuilder::new("SELECT count(*) FROM (SELECT 1 FROM verdicts v WHERE true");
        push_class(&mut q, rule, class);
        push_filter(&mut q, filter);
        q.push(" LIMIT ").push_bind(i64::from(cap)).push(") c");
        let n: i64 = q.build_query_scalar().fetch_one(self.pool()).await?;
        Ok(u32::try_from(n).unwrap_or(cap))
    }

    /// One verdict as the queue sees it now, whatever the filters (None:
    /// no such verdict).
    pub async fn queue_row(
        &self,
        request_id: Uuid,
        rule: Flagging,
    ) -> Result<Option<QueueRow>, StoreError> {
        let mut q = QueryBuilder::new(
            "SELECT v.request_id, v.created_at, v.tenant, v.label, v.p_fake, v.forgery_type, COALESCE(",
        );
        push_flagged(&mut q, rule);
        q.push(format!(
            ", false) AS flagged, {CORRECTED} AS corrected FROM verdicts v WHERE v.request_id = "
        ))
        .push_bind(request_id);
        Ok(q.build_query_as::<QueueRow>()
            .fetch_optional(self.pool())
            .await?)
    }
}
