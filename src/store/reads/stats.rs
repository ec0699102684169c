//! The figures of `/api/stats` over the verdicts a filter matches: counts
//! per time bucket, label and forgery type; the p_fake histogram; and per
//! adapter, agreement with the standing (latest) corrections.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};

use super::super::{Store, StoreError};
use super::push_filter;
use crate::domain::verdict_query::{Agreement, Bucket, VerdictFilter, P_FAKE_BINS};
use crate::domain::{ForgeryType, Label};

/// Verdicts of one label and forgery type in one bucket.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct BucketCount {
    pub start: DateTime<Utc>,
    /// None: `no_face` verdicts (no face found, nothing screened).
    pub label: Option<Label>,
    pub forgery_type: Option<ForgeryType>,
    pub verdicts: i64,
}

/// One adapter's verdicts (None: the base model) and how its corrected
/// ones fared.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterCounts {
    pub adapter_id: Option<String>,
    pub verdicts: u64,
    /// Of those, `no_face` ones: never in the agreement, having no label.
    pub no_face: u64,
    pub agreement: Agreement,
}

#[derive(sqlx::FromRow)]
struct AdapterRow {
    adapter_id: Option<String>,
    verdicts: i64,
    no_face: i64,
    true_fake: i64,
    false_fake: i64,
    missed_fake: i64,
    true_real: i64,
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Store {
    /// Non-zero counts per bucket start, label and forgery type, in order.
    pub async fn bucket_counts(
        &self,
        filter: &VerdictFilter,
        bucket: Bucket,
    ) -> Result<Vec<BucketCount>, StoreError> {
        // date_bin from a Monday: hours, days and ISO weeks in UTC, as
        // `Bucket::start_of` cuts them, by arithmetic (date_trunc with a
        // time zone converts every row).
        let mut q = QueryBuilder::<Postgres>::new("SELECT date_bin(");
        q.push_bind(bucket.interval())
            .push("::interval, v.created_at, '2000-01-03T00:00:00Z') AS start, v.label, v.forgery_type, ")
            .push("count(*) AS verdicts FROM verdicts v WHERE true");
        push_filter(&mut q, filter);
        q.push(" GROUP BY 1, 2, 3 ORDER BY 1, 2, 3");
        Ok(q.build_query_as().fetch_all(self.pool()).await?)
    }

    /// Verdicts per p_fake bin, `P_FAKE_BINS` of them, bin i being
    /// `[i/10, (i+1)/10)` and the last one holding 1.0. The bounds are
    /// REALs, as p_fake is: a p_fake stored as 0.7 falls in `[0.7, 0.8)`
    /// (as a double, the REAL 0.7 is 0.69999…). `no_face` verdicts have no
    /// p_fake and no bin.
    pub async fn p_fake_histogram(&self, filter: &VerdictFilter) -> Result<Vec<u64>, StoreError> {
        let bounds: Vec<f32> = (1..P_FAKE_BINS)
            .map(|i| i as f32 / P_FAKE_BINS as f32)
            .collect();
        let mut q = QueryBuilder::<Postgres>::new("SELECT width_bucket(v.p_fake, ");
        q.push_bind(bounds)
            .push("::real[]) AS bin, count(*) FROM verdicts v WHERE v.p_fake IS NOT NULL");
        push_filter(&mut q, filter);
        q.push(" GROUP BY 1");
        let rows: Vec<(i32, i64)> = q.build_query_as().fetch_all(self.pool()).await?;
        let mut histogram = vec![0u64; P_FAKE_BINS as usize];
        for (bin, n) in rows {
            // width_bucket counts the bounds at or below p_fake: 0 to 9.
            if let Some(slot) = usize::try_from(bin).ok().and_then(|i| histogram.get_mut(i)) {
                *slot += count(n);
            }
        }
        Ok(histogram)
    }

    /// Per adapter (the base model first), its verdicts and the confusion
    /// counts of those corrected, the standing correction being the truth.
    /// A corrected `no_face` verdict (no label) is in none of the four
    /// counts: it claimed nothing to agree or disagree with. Its p_fake,
    /// NULL exactly for `no_face`, tells it (an INCLUDE column of the
    /// index, where `status` is not).
    pub async fn adapter_counts(
        &self,
        filter: &VerdictFilter,
    ) -> Result<Vec<AdapterCounts>, StoreError> {
        // Corrections are few next to verdicts: their standing ones hash-join.
        let mut q = QueryBuilder::<Postgres>::new(
            "WITH standing AS (SELECT DISTINCT ON (c.request_id) c.request_id, c.label FROM corrections c \
                 ORDER BY c.request_id, c.created_at DESC, c.revision DESC) \
             SELECT v.adapter_id, count(*) AS verdicts, \
                 count(*) FILTER (WHERE v.p_fake IS NULL) AS no_face, \
                 count(*) FILTER (WHERE v.label = 'fake' AND s.label = 'fake') AS true_fake, \
                 count(*) FILTER (WHERE v.label = 'fake' AND s.label = 'real') AS false_fake, \
                 count(*) FILTER (WHERE v.label = 'real' AND s.label = 'fake') AS missed_fake, \
                 count(*) FILTER (WHERE v.label = 'real' AND s.label = 'real') AS true_real \
             FROM verdicts v LEFT JOIN standing s USING (request_id) WHERE true",
        );
        push_filter(&mut q, filter);
        q.push(" GROUP BY v.adapter_id ORDER BY v.adapter_id NULLS FIRST");
        let rows: Vec<AdapterRow> = q.build_query_as().fetch_all(self.pool()).await?;
        Ok(rows
            .into_iter()
            .map(|r| AdapterCounts {
                adapter_id: r.adapter_id,
                verdicts: count(r.verdicts),
                no_face: count(r.no_face),
                agreement: Agreement {
                    true_fake: count(r.true_fake),
                    false_fake: count(r.false_fake),
                    missed_fake: count(r.missed_fake),
                    true_real: count(r.true_real),
                },
            })
            .collect())
    }
}
