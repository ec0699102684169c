//! The time buckets of `/api/stats`: hours, days or ISO weeks (from Monday),
//! all in UTC, as Postgres's `date_trunc(unit, t, 'UTC')` and
//! `date_bin(interval, t, <a Monday, 00:00 UTC>)` cut them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// More buckets than a chart can show: a longer bucket is the answer.
pub const MAX_BUCKETS: u64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    Hour,
    #[default]
    Day,
    Week,
}

/// A range cut into more than `MAX_BUCKETS`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{buckets} buckets (at most {MAX_BUCKETS}): choose a longer bucket or a shorter range")]
pub struct TooManyBuckets {
    pub buckets: u64,
}

/// 1970-01-01 was a Thursday; ISO weeks start on the Monday 4 days later.
const FIRST_MONDAY_SECS: i64 = 4 * 86_400;

impl Bucket {
    /// Its name in the API (also a unit of Postgres's `date_trunc`).
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
            Bucket::Week => "week",
        }
    }

    /// The bucket's length as a Postgres interval.
    pub fn interval(self) -> &'static str {
        match self {
            Bucket::Hour => "1 hour",
            Bucket::Day => "1 day",
            Bucket::Week => "7 days",
        }
    }

    fn seconds(self) -> i64 {
        match self {
            Bucket::Hour => 3_600,
            Bucket::Day => 86_400,
            Bucket::Week => 7 * 86_400,
        }
    }

    /// The start of the bucket holding `t`.
    pub fn start_of(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let origin = match self {
            Bucket::Week => FIRST_MONDAY_SECS,
            _ => 0,
        };
        let s = t.timestamp();
        let start = s - (s - origin).rem_euclid(self.seconds());
        DateTime::from_timestamp(start, 0).unwrap_or(t)
    }

    /// The starts of the buckets that cover `[since, until)`, in order
    /// (none when the range is empty).
    pub fn starts(
        self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, TooManyBuckets> {
        if since >= until {
            return Ok(Vec::new());
        }
        let first = self.start_of(since);
        let last = self.start_of(until - chrono::Duration::microseconds(1));
        let buckets = ((last - first).num_seconds() / self.seconds()) as u64 + 1;
        if buckets > MAX_BUCKETS {
            return Err(TooManyBuckets { buckets });
        }
        let step = chrono::Duration::seconds(self.seconds());
        Ok((0..buckets as i32).map(|i| first + step * i).collect())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Datelike, Weekday};

    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn buckets_start_where_date_trunc_cuts_in_utc() {
        let at = t("2026-03-12T17:45:30.5Z"); // a Thursday
        assert_eq!(Bucket::Hour.start_of(at), t("2026-03-12T17:00:00Z"));
        assert_eq!(Bucket::Day.start_of(at), t("2026-03-12T00:00:00Z"));
        let week = Bucket::Week.start_of(at);
        assert_eq!(week, t("2026-03-09T00:00:00Z"));
        assert_eq!(week.weekday(), Weekday::Mon);
        assert_eq!(Bucket::Week.start_of(week), week);
        assert_eq!(
            Bucket::Day.start_of(t("1969-12-31T23:00:00Z")),
            t("1969-12-31T00:00:00Z")
        );
    }

    #[test]
    fn every_instant_of_the_range_has_its_bucket_and_no_more() {
        let starts = Bucket::Day
            .starts(t("2026-03-01T12:00:00Z"), t("2026-03-04T00:00:00Z"))
            .unwrap();
        assert_eq!(
            starts,
            [
                t("2026-03-01T00:00:00Z"),
                t("2026-03-02T00:00:00Z"),
                t("2026-03-03T00:00:00Z")
            ],
            "until is exclusive: 2026-03-04 starts no bucket"
        );
        let hours = Bucket::Hour
            .starts(t("2026-03-01T00:00:00Z"), t("2026-03-01T00:00:01Z"))
            .unwrap();
        assert_eq!(hours, [t("2026-03-01T00:00:00Z")]);
        assert!(Bucket::Week
            .starts(t("2026-03-01T00:00:00Z"), t("2026-03-01T00:00:00Z"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn too_many_buckets_are_refused() {
        let since = t("2020-01-01T00:00:00Z");
        let until = t("2026-01-01T00:00:00Z");
        assert!(Bucket::Hour.starts(since, until).is_err());
        assert_eq!(Bucket::Week.starts(since, until).unwrap().len(), 314);
    }
}
