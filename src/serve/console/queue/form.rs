//! The queue's query string: the filter form's fields as a browser sends
//! them (every field, empty ones too), the page's cursor, and `next`'s
//! `after` and `class`. Tolerant where the API is strict: an empty field
//! is no filter, unknown parameters are ignored (the verdict page hands
//! the queue's query back with its own), times may be `datetime-local` or
//! plain dates; a bad value becomes a message on the page, not an error.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use serde::Serialize;

use crate::domain::verdict_query::VerdictFilter;
use crate::domain::ForgeryType;

/// The filter fields as typed (trimmed): the form shows them again, and
/// links carry them (`query`) from the queue to a verdict and back.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FilterForm {
    pub tenant: String,
    pub forgery_type: String,
    pub min_p_fake: String,
    pub max_p_fake: String,
    pub since: String,
    pub until: String,
}

/// Everything the queue's routes read from a query string.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueQuery {
    pub form: FilterForm,
    pub cursor: Option<String>,
    pub after: Option<String>,
    pub class: Option<String>,
}

/// A filter field the queue cannot use, said so that a person can fix it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BadField {
    pub field: &'static str,
    pub message: String,
}

fn bad(field: &'static str, message: impl Into<String>) -> BadField {
    BadField {
        field,
        message: message.into(),
    }
}

impl QueueQuery {
    pub fn parse(query: &str) -> QueueQuery {
        let mut q = QueueQuery::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let v = v.trim().to_string();
            let f = &mut q.form;
            let slot = match k.as_ref() {
                "tenant" => &mut f.tenant,
                "forgery_type" => &mut f.forgery_type,
                "min_p_fake" => &mut f.min_p_fake,
                "max_p_fake" => &mut f.max_p_fake,
                "since" => &mut f.since,
                "until" => &mut f.until,
                "cursor" => {
                    q.cursor = Some(v).filter(|v| !v.is_empty());
                    continue;
                }
                "after" => {
                    q.after = Some(v);
                    continue;
                }
                "class" => {
                    q.class = Some(v);
                    continue;
                }
                _ => continue,
            };
            *slot = v;
        }
        q
    }
}

impl FilterForm {
    /// The non-empty fields as a query string (`""` when none).
    pub fn query(&self) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in self.fields() {
            if !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        s.finish()
    }

    pub fn is_empty(&self) -> bool {
        self.fields().iter().all(|(_, v)| v.is_empty())
    }

    fn fields(&self) -> [(&'static str, &str); 6] {
        [
            ("tenant", &self.tenant),
            ("forgery_type", &self.forgery_type),
            ("min_p_fake", &self.min_p_fake),
            ("max_p_fake", &self.max_p_fake),
            ("since", &self.since),
            ("until", &self.until),
        ]
    }

    /// The filter these fields ask for (`tenant` as asked: the caller's
    /// own tenant is applied by `VerdictFilter::within`).
    pub fn check(&self) -> Result<VerdictFilter, BadField> {
        let forgery_type = match self.forgery_type.as_str() {
            "" => None,
            t => Some(
                t.parse::<ForgeryType>()
                    .map_err(|_| bad("forgery type", format!("no forgery type is called `{t}`")))?,
            ),
        };
        let min_p_fake = p_fake("p_fake from", &self.min_p_fake)?;
        let max_p_fake = p_fake("p_fake to", &self.max_p_fake)?;
        if let (Some(lo), Some(hi)) = (min_p_fake, max_p_fake) {
            if hi < lo {
                return Err(bad("p_fake", format!("the range {lo} to {hi} is empty")));
            }
        }
        let since = time("since", &self.since, false)?;
        let until = time("until", &self.until, true)?;
        if let (Some(s), Some(u)) = (since, until) {
            if u <= s {
                return Err(bad("until", "must be later than since"));
            }
        }
        if self.tenant.chars().count() > 200 {
            return Err(bad("tenant", "at most 200 characters"));
        }
        Ok(VerdictFilter {
            since,
            until,
            forgery_type,
            tenant: Some(self.tenant.clone()).filter(|t| !t.is_empty()),
            min_p_fake,
            max_p_fake,
            ..VerdictFilter::default()
        })
    }
}

/// A probability from 0 to 1; a decimal comma is fine.
fn p_fake(field: &'static str, raw: &str) -> Result<Option<f32>, BadField> {
    if raw.is_empty() {
        return Ok(None);
    }
    match raw.replace(',', ".").parse::<f32>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(Some(p)),
        _ => Err(bad(field, format!("`{raw}` is not a number from 0 to 1"))),
    }
}

/// A time in UTC: RFC 3339, what a `datetime-local` input sends
/// (`2026-03-01T10:00`, seconds optional, `T` or a space), or a date. A
/// date that ends a range (`until`) includes its whole day.
fn time(field: &'static str, raw: &str, ends: bool) -> Result<Option<DateTime<Utc>>, BadField> {
    if raw.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    let normal = raw.replacen(' ', "T", 1);
    for format in [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(&normal, format) {
            return Ok(Some(t.and_utc()));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        let day = d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        return Ok(day.map(|t| if ends { t + Duration::days(1) } else { t }));
    }
    Err(bad(
        field,
        format!("`{raw}` is not a time (write 2026-03-01 or 2026-03-01T14:30, in UTC)"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(q: &str) -> Result<VerdictFilter, BadField> {
        QueueQuery::parse(q).form.check()
    }

    fn t(s: &str) -> Option<DateTime<Utc>> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn an_empty_form_filters_nothing() {
        let all = "tenant=&forgery_type=&min_p_fake=&max_p_fake=&since=&until=";
        assert_eq!(filter(all), Ok(VerdictFilter::default()));
        assert_eq!(filter(""), Ok(VerdictFilter::default()));
        assert!(QueueQuery::parse(all).form.is_empty());
        assert_eq!(QueueQuery::parse(all).form.query(), "");
    }

    #[test]
    fn every_field_parses_as_a_browser_sends_it() {
        let q = QueueQuery::parse(
            "tenant=+acme+&forgery_type=face_swap&min_p_fake=0,5&max_p_fake=1\
             &since=2026-03-01T10%3A30&until=2026-03-02&cursor=abc&after=x&class=todo&other=1",
        );
        let f = q.form.check().unwrap();
        assert_eq!(f.tenant.as_deref(), Some("acme"));
        assert_eq!(f.forgery_type, Some(ForgeryType::FaceSwap));
        assert_eq!((f.min_p_fake, f.max_p_fake), (Some(0.5), Some(1.0)));
        assert_eq!(f.since, t("2026-03-01T10:30:00Z"));
        assert_eq!(
            f.until,
            t("2026-03-03T00:00:00Z"),
            "a date ends with its day"
        );
        assert_eq!(
            (q.cursor.as_deref(), q.after.as_deref(), q.class.as_deref()),
            (Some("abc"), Some("x"), Some("todo"))
        );
        // The links keep the fields as typed, and nothing else.
        assert_eq!(
            q.form.query(),
            "tenant=acme&forgery_type=face_swap&min_p_fake=0%2C5&max_p_fake=1\
             &since=2026-03-01T10%3A30&until=2026-03-02"
        );
        assert_eq!(QueueQuery::parse(&q.form.query()).form, q.form);
    }

    #[test]
    fn times_come_in_many_shapes() {
        for (raw, at) in [
            ("2026-03-01", "2026-03-01T00:00:00Z"),
            ("2026-03-01T10:30", "2026-03-01T10:30:00Z"),
            ("2026-03-01 10:30:15", "2026-03-01T10:30:15Z"),
            ("2026-03-01T10:30:15.250", "2026-03-01T10:30:15.250Z"),
            ("2026-03-01T10:30:00%2B01:00", "2026-03-01T09:30:00Z"),
        ] {
            assert_eq!(
                filter(&format!("since={raw}")).unwrap().since,
                t(at),
                "{raw}"
            );
        }
    }

    #[test]
    fn a_bad_value_names_its_field() {
        for (q, field) in [
            ("since=yesterday", "since"),
            ("until=2026-13-01", "until"),
            ("since=2026-03-02&until=2026-03-01", "until"),
            ("forgery_type=deepfake", "forgery type"),
            ("min_p_fake=high", "p_fake from"),
            ("max_p_fake=1.5", "p_fake to"),
            ("min_p_fake=NaN", "p_fake from"),
            ("min_p_fake=0.8&max_p_fake=0.2", "p_fake"),
        ] {
            assert_eq!(filter(q).map_err(|e| e.field), Err(field), "{q}");
        }
        let long = format!("tenant={}", "t".repeat(201));
        assert_eq!(filter(&long).map_err(|e| e.field), Err("tenant"));
    }
}
