//! The query parameters of the read routes (`/api/verdicts`, `/api/stats`,
//! `/api/export`), parsed and checked into `domain::verdict_query` values.
//! Every bad value is a 400 naming its parameter; unknown parameters too.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::ApiError;
use super::extract::parse_query;
use crate::domain::verdict_query::{Bucket, Keyset, VerdictFilter};
use crate::domain::{ForgeryType, Label, VerdictStatus};

/// A page of `/api/verdicts` holds at most this many.
pub const MAX_LIMIT: u32 = 500;
pub const DEFAULT_LIMIT: u32 = 50;

/// Which verdicts: shared by `/api/verdicts` and `/api/export`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FilterParams {
    /// Made at or after (RFC 3339, e.g. `2026-03-01T00:00:00Z`; write `+` as `%2B`).
    pub since: Option<DateTime<Utc>>,
    /// Made before (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// `real` or `fake` (the model's verdict).
    #[param(value_type = Option<String>)]
    pub label: Option<Label>,
    /// `face_swap`, `face_reenactment`, `face_editing` or `entire_face_synthesis`.
    #[param(value_type = Option<String>)]
    pub forgery_type: Option<ForgeryType>,
    /// `analysed` or `no_face` (face detection found no face: such a
    /// verdict has no label and no p_fake, so `label` and the p_fake
    /// bounds never match it).
    #[param(value_type = Option<String>)]
    pub status: Option<VerdictStatus>,
    /// Only this tenant's verdicts. A token with a tenant sees only its own:
    /// another tenant here gives an empty answer.
    pub tenant: Option<String>,
    /// p_fake at least (0 to 1).
    pub min_p_fake: Option<f32>,
    /// p_fake at most (0 to 1).
    pub max_p_fake: Option<f32>,
    /// Made by this adapter (registry id).
    pub adapter: Option<String>,
    /// `true`: some reviewer corrected it; `false`: none did.
    pub corrected: Option<bool>,
    /// `true`: some reviewer's correction contradicts it (another label, or
    /// another forgery type named); `false`: none does (uncorrected included).
    pub disagreement: Option<bool>,
}

/// Where a page of `/api/verdicts` starts and how long it is.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page, unchanged.
    pub cursor: Option<String>,
}

pub const PAGE_PARAMS: &[&str] = &["limit", "cursor"];

/// A checked page request.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub limit: u32,
    pub after: Option<Keyset>,
}

/// `/api/stats`: which verdicts and how to cut them.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// Made at or after (RFC 3339; default: 30 days before `until`).
    pub since: Option<DateTime<Utc>>,
    /// Made before (RFC 3339; default: now).
    pub until: Option<DateTime<Utc>>,
    /// `hour`, `day` (default) or `week` (from Monday), in UTC.
    #[param(value_type = Option<String>)]
    pub bucket: Option<Bucket>,
    /// Only this tenant (a token with a tenant sees only its own).
    pub tenant: Option<String>,
}

/// The statistics' default range: the last 30 days.
pub const DEFAULT_STATS_DAYS: i64 = 30;

/// A checked stats request.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsRequest {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub bucket: Bucket,
    pub tenant: Option<String>,
}

/// Parses a query string of which the parameters named in `own` make a `B`
/// and the rest an `A` (the filters), each strictly (unknown names are 400s).
pub fn parse_split<A: DeserializeOwned, B: DeserializeOwned>(
    query: &str,
    own: &[&str],
) -> Result<(A, B), ApiError> {
    let mut filters = form_urlencoded::Serializer::new(String::new());
    let mut rest = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if own.contains(&k.as_ref()) {
            rest.append_pair(&k, &v);
        } else {
            filters.append_pair(&k, &v);
        }
    }
    Ok((
        parse_query(&filters.finish())?,
        parse_query(&rest.finish())?,
    ))
}

fn p_fake(field: &str, p: Option<f32>) -> Result<Option<f32>, ApiError> {
    match p {
        Some(v) if !(0.0..=1.0).contains(&v) => Err(ApiError::bad(field, "must be from 0 to 1")),
        other => Ok(other),
    }
}

fn named(field: &str, v: Option<String>) -> Result<Option<String>, ApiError> {
    match v {
        Some(s) if s.is_empty() => Err(ApiError::bad(field, "must not be empty")),
        Some(s) if s.chars().count() > 200 => Err(ApiError::bad(field, "at most 200 characters")),
        other => Ok(other),
    }
}

fn range(since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> Result<(), ApiError> {
    match (since, until) {
        (Some(s), Some(u)) if u <= s => Err(ApiError::bad("until", "must be later than `since`")),
        _ => Ok(()),
    }
}

impl FilterParams {
    pub fn check(self) -> Result<VerdictFilter, ApiError> {
        range(self.since, self.until)?;
        let min_p_fake = p_fake("min_p_fake", self.min_p_fake)?;
        let max_p_fake = p_fake("max_p_fake", self.max_p_fake)?;
        if let (Some(lo), Some(hi)) = (min_p_fake, max_p_fake) {
            if hi < lo {
                return Err(ApiError::bad("max_p_fake", "must be at least `min_p_fake`"));
            }
        }
        Ok(VerdictFilter {
            since: self.since,
            until: self.until,
            label: self.label,
            forgery_type: self.forgery_type,
            status: self.status,
            tenant: named("tenant", self.tenant)?,
            min_p_fake,
            max_p_fake,
            adapter: named("adapter", self.adapter)?,
            corrected: self.corrected,
            disagreement: self.disagreement,
        })
    }
}

impl PageParams {
    pub fn check(self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad(
                "limit",
                format!("must be from 1 to {MAX_LIMIT}"),
            ));
        }
        let after = self
            .cursor
            .map(|c| Keyset::decode(&c).map_err(|e| ApiError::bad("cursor", e.to_string())))
            .transpose()?;
        Ok(Page { limit, after })
    }
}

impl StatsParams {
    /// Checked against `now` (the default end of the range).
    pub fn check(self, now: DateTime<Utc>) -> Result<StatsRequest, ApiError> {
        let until = self.until.unwrap_or(now);
        let since = self
            .since
            .unwrap_or(until - chrono::Duration::days(DEFAULT_STATS_DAYS));
        range(Some(since), Some(until))?;
        let bucket = self.bucket.unwrap_or_default();
        bucket
            .starts(since, until)
            .map_err(|e| ApiError::bad("bucket", e.to_string()))?;
        Ok(StatsRequest {
            since,
            until,
            bucket,
            tenant: named("tenant", self.tenant)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field<T: std::fmt::Debug>(r: Result<T, ApiError>) -> String {
        match r {
            Err(ApiError::BadRequest { field, .. }) => field,
            other => panic!("expected a 400, got {other:?}"),
        }
    }

    fn filter(q: &str) -> Result<VerdictFilter, ApiError> {
        parse_query::<FilterParams>(q)?.check()
    }

    fn page(q: &str) -> Result<(VerdictFilter, Page), ApiError> {
        let (f, p): (FilterParams, PageParams) = parse_split(q, PAGE_PARAMS)?;
        Ok((f.check()?, p.check()?))
    }

    #[test]
    fn every_filter_parses() {
        let f = filter(
            "since=2026-03-01T00:00:00Z&until=2026-03-02T00:00:00%2B01:00&label=fake\
             &forgery_type=face_swap&tenant=acme&min_p_fake=0.5&max_p_fake=1&adapter=a1\
             &corrected=true&disagreement=false&status=analysed",
        )
        .unwrap();
        assert_eq!(f.status, Some(VerdictStatus::Analysed));
        assert_eq!(f.since, Some("2026-03-01T00:00:00Z".parse().unwrap()));
        assert_eq!(f.until, Some("2026-03-01T23:00:00Z".parse().unwrap()));
        assert_eq!(f.label, Some(Label::Fake));
        assert_eq!(f.forgery_type, Some(ForgeryType::FaceSwap));
        assert_eq!(f.tenant.as_deref(), Some("acme"));
        assert_eq!((f.min_p_fake, f.max_p_fake), (Some(0.5), Some(1.0)));
        assert_eq!(f.adapter.as_deref(), Some("a1"));
        assert_eq!((f.corrected, f.disagreement), (Some(true), Some(false)));
        assert_eq!(filter("").unwrap(), VerdictFilter::default());
    }

    #[test]
    fn each_bad_value_names_its_parameter() {
        for (q, name) in [
            ("since=yesterday", "since"),
            ("until=2026-03-01", "until"),
            (
                "since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z",
                "until",
            ),
            ("label=maybe", "label"),
            ("label=fake' OR '1'='1", "label"),
            ("forgery_type=deepfake", "forgery_type"),
            ("min_p_fake=high", "min_p_fake"),
            ("min_p_fake=-0.1", "min_p_fake"),
            ("max_p_fake=NaN", "max_p_fake"),
            ("min_p_fake=0.8&max_p_fake=0.2", "max_p_fake"),
            ("corrected=yes", "corrected"),
            ("disagreement=1", "disagreement"),
            ("status=noface", "status"),
            ("tenant=", "tenant"),
            ("adapter=", "adapter"),
            ("label=fake&label=real", "label"),
            ("colour=red", "colour"),
        ] {
            assert_eq!(field(filter(q)), name, "{q}");
        }
    }

    #[test]
    fn pages_are_1_to_500_long_and_start_at_a_cursor_of_ours() {
        let (_, p) = page("label=fake").unwrap();
        assert_eq!(
            p,
            Page {
                limit: 50,
                after: None
            }
        );
        let k = Keyset {
            created_at: "2026-03-01T10:00:00.123456Z".parse().unwrap(),
            request_id: uuid::Uuid::new_v4(),
        };
        let (f, p) = page(&format!("limit=500&label=real&cursor={}", k.encode())).unwrap();
        assert_eq!((p.limit, p.after), (500, Some(k)));
        assert_eq!(f.label, Some(Label::Real));
        for (q, name) in [
            ("limit=0", "limit"),
            ("limit=501", "limit"),
            ("limit=-1", "limit"),
            ("limit=ten", "limit"),
            ("cursor=abc", "cursor"),
            ("cursor='; DROP TABLE verdicts; --", "cursor"),
            ("label=fake&bogus=1", "bogus"),
        ] {
            assert_eq!(field(page(q)), name, "{q}");
        }
    }

    #[test]
    fn stats_default_to_the_last_30_days_by_day() {
        let now: DateTime<Utc> = "2026-03-31T12:00:00Z".parse().unwrap();
        let s = parse_query::<StatsParams>("").unwrap().check(now).unwrap();
        assert_eq!(s.until, now);
        assert_eq!(
            s.since,
            "2026-03-01T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(s.bucket, Bucket::Day);
        let s = parse_query::<StatsParams>("bucket=week&tenant=t")
            .unwrap()
            .check(now)
            .unwrap();
        assert_eq!((s.bucket, s.tenant.as_deref()), (Bucket::Week, Some("t")));
        for (q, name) in [
            ("bucket=month", "bucket"),
            ("since=2000-01-01T00:00:00Z&bucket=hour", "bucket"),
            ("since=2026-04-01T00:00:00Z", "until"),
            ("label=fake", "label"),
        ] {
            let r = parse_query::<StatsParams>(q).and_then(|p| p.check(now));
            assert_eq!(field(r), name, "{q}");
        }
    }
}
