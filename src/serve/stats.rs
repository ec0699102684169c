//! `GET /api/stats` (`Permission::Stats`): over a range (default the last
//! 30 days), verdicts per time bucket by label and forgery type, the p_fake
//! histogram, and per adapter how its verdicts agree with reviewers'
//! standing corrections. A token with a tenant counts only its own.
//!
//! `no_face` verdicts (no face found, nothing screened) count among the
//! verdicts and in `no_face`, never under a label, in the histogram or in
//! the agreement: they have no label or p_fake.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::parse_query;
use super::filters::{StatsParams, StatsRequest};
use super::state::App;
use crate::domain::access::Permission;
use crate::domain::verdict_query::{Agreement, VerdictFilter, P_FAKE_BINS};
use crate::domain::{ForgeryType, Label};
use crate::store::{AdapterCounts, BucketCount};

pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new().routes(routes!(stats))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// `hour`, `day` or `week`.
    pub bucket: String,
    pub tenant: Option<String>,
    /// Verdicts in the range.
    pub verdicts: u64,
    /// Of those, `no_face` ones (no face found: no label, no p_fake).
    pub no_face: u64,
    /// Every bucket of the range, in order, empty ones included.
    pub buckets: Vec<BucketStats>,
    /// `P_FAKE_BINS` bins of width 0.1 from 0; the last holds 1.0. Only
    /// verdicts with a p_fake (not `no_face`).
    pub p_fake_histogram: Vec<HistogramBin>,
    /// The base model (`adapter` null) first, then by adapter id; only
    /// those with verdicts in the range.
    pub adapters: Vec<AdapterStats>,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct BucketStats {
    /// The bucket's first instant (UTC).
    pub start: DateTime<Utc>,
    pub verdicts: u64,
    /// `real` and `fake` → count.
    pub labels: BTreeMap<String, u64>,
    /// Verdicts without a label: no face was found.
    pub no_face: u64,
    /// Each forgery type → count (fakes with a type).
    pub forgery_types: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistogramBin {
    /// p_fake from (inclusive)…
    pub from: f64,
    /// …to (exclusive, but for the last bin).
    pub to: f64,
    pub verdicts: u64,
}

/// "fake" is the positive class; a verdict's standing (latest) correction
/// is the truth; only corrected verdicts count towards agreement.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdapterStats {
    /// Null: the base model.
    pub adapter: Option<String>,
    pub verdicts: u64,
    /// Of its verdicts, `no_face` ones (not in the counts below).
    pub no_face: u64,
    /// Corrected verdicts with a label (a corrected `no_face` verdict
    /// claimed nothing to agree with).
    pub corrected: u64,
    pub true_fake: u64,
    pub false_fake: u64,
    pub missed_fake: u64,
    pub true_real: u64,
    /// (true_fake + true_real) / corrected; null when none is corrected.
    pub accuracy: Option<f64>,
    /// true_fake / (true_fake + false_fake); null when no fake verdict is.
    pub precision: Option<f64>,
    /// true_fake / (true_fake + missed_fake); null when no corrected fake.
    pub recall: Option<f64>,
}

impl From<AdapterCounts> for AdapterStats {
    fn from(c: AdapterCounts) -> Self {
        let a: Agreement = c.agreement;
        AdapterStats {
            adapter: c.adapter_id,
            verdicts: c.verdicts,
            no_face: c.no_face,
            corrected: a.corrected(),
            true_fake: a.true_fake,
            false_fake: a.false_fake,
            missed_fake: a.missed_fake,
            true_real: a.true_real,
            accuracy: a.accuracy(),
            precision: a.precision(),
            recall: a.recall(),
        }
    }
}

/// Counts, histogram and per-adapter agreement over a range.
#[utoipa::path(get, path = "/api/stats", tag = "analysis",
    params(StatsParams),
    responses(
        (status = 200, body = Stats),
        (status = 400, body = ErrorBody, description = "a bad parameter, named in `field`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn stats(
    State(app): State<Arc<App>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<Stats>, ApiError> {
    caller.require(Permission::Stats)?;
    let req = parse_query::<StatsParams>(query.as_deref().unwrap_or_default())?.check(Utc::now())?;
    Ok(Json(load(&app, &caller, &req).await?))
}

/// The figures of `req` as `caller` may see them (its tenant only, when it
/// has one): this route and the console's numbers page both answer this.
pub(crate) async fn load(
    app: &App,
    caller: &Caller,
    req: &StatsRequest,
) -> Result<Stats, ApiError> {
    caller.require(Permission::Stats)?;
    let filter = VerdictFilter {
        since: Some(req.since),
        until: Some(req.until),
        tenant: req.tenant.clone(),
        ..VerdictFilter::default()
    };
    let (counts, histogram, adapters) = match filter.within(caller.tenant()) {
        // Three scans at once, on three connections.
        Some(f) => tokio::try_join!(
            app.store.bucket_counts(&f, req.bucket),
            app.store.p_fake_histogram(&f),
            app.store.adapter_counts(&f),
        )?,
        None => (Vec::new(), vec![0; P_FAKE_BINS as usize], Vec::new()),
    };
    Ok(assemble(req, &counts, &histogram, adapters))
}

/// The answer from the store's figures; every bucket of the range appears.
pub(crate) fn assemble(
    req: &StatsRequest,
    counts: &[BucketCount],
    histogram: &[u64],
    adapters: Vec<AdapterCounts>,
) -> Stats {
    let starts = req.bucket.starts(req.since, req.until).unwrap_or_default();
    let mut buckets: BTreeMap<DateTime<Utc>, BucketStats> = starts
        .into_iter()
        .map(|start| {
            let empty = BucketStats {
                start,
                labels: [Label::Real, Label::Fake]
                    .iter()
                    .map(|l| (l.as_str().to_string(), 0))
                    .collect(),
                forgery_types: ForgeryType::ALL
                    .iter()
                    .map(|t| (t.as_str().to_string(), 0))
                    .collect(),
                verdicts: 0,
                no_face: 0,
            };
            (start, empty)
        })
        .collect();
    let (mut total, mut no_face) = (0, 0);
    for c in counts {
        let n = u64::try_from(c.verdicts).unwrap_or(0);
        total += n;
        let b = buckets.entry(c.start).or_insert_with(|| BucketStats {
            start: c.start,
            ..BucketStats::default()
        });
        b.verdicts += n;
        match c.label {
            Some(label) => *b.labels.entry(label.as_str().into()).or_default() += n,
            None => {
                b.no_face += n;
                no_face += n;
            }
        }
        if let Some(t) = c.forgery_type {
            *b.forgery_types.entry(t.as_str().into()).or_default() += n;
        }
    }
    let width = 1.0 / f64::from(P_FAKE_BINS);
    Stats {
        since: req.since,
        until: req.until,
        bucket: req.bucket.as_str().into(),
        tenant: req.tenant.clone(),
        verdicts: total,
        no_face,
        buckets: buckets.into_values().collect(),
        p_fake_histogram: histogram
            .iter()
            .enumerate()
            .map(|(i, n)| HistogramBin {
                from: i as f64 * width,
                to: (i + 1) as f64 * width,
                verdicts: *n,
            })
            .collect(),
        adapters: adapters.into_iter().map(AdapterStats::from).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::verdict_query::Bucket;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn every_bucket_appears_and_counts_add_up() {
        let req = StatsRequest {
            since: t("2026-03-01T00:00:00Z"),
            until: t("2026-03-04T00:00:00Z"),
            bucket: Bucket::Day,
            tenant: None,
        };
        let row = |day: &str, label, forgery_type, verdicts| BucketCount {
            start: t(day),
            label,
            forgery_type,
            verdicts,
        };
        let counts = [
            row("2026-03-01T00:00:00Z", Some(Label::Real), None, 2),
            row(
                "2026-03-01T00:00:00Z",
                Some(Label::Fake),
                Some(ForgeryType::FaceSwap),
                3,
            ),
            row("2026-03-01T00:00:00Z", None, None, 4),
            row("2026-03-03T00:00:00Z", Some(Label::Fake), None, 1),
        ];
        let s = assemble(&req, &counts, &[0; 10], Vec::new());
        assert_eq!(s.verdicts, 10);
        assert_eq!(s.no_face, 4, "no face found: no label");
        assert_eq!(s.buckets.len(), 3);
        assert_eq!(s.buckets[0].verdicts, 9);
        assert_eq!(s.buckets[0].no_face, 4);
        assert_eq!(s.buckets[0].labels.values().sum::<u64>(), 5);
        assert_eq!(s.buckets[0].labels["fake"], 3);
        assert_eq!(s.buckets[0].forgery_types["face_swap"], 3);
        assert_eq!(s.buckets[1].verdicts, 0, "an empty day is still there");
        assert_eq!(s.buckets[1].labels["real"], 0);
        assert_eq!(s.buckets[2].labels["fake"], 1);
        assert_eq!(s.buckets[2].forgery_types.values().sum::<u64>(), 0);
        assert_eq!(s.p_fake_histogram.len(), 10);
        assert!((s.p_fake_histogram[9].to - 1.0).abs() < 1e-12);
    }
}
