//! What the queue's template and redirects are given: rows as shown, and
//! the links between the queue and the verdict page, which carry the
//! filter query and the class a verdict was listed in.

use chrono::{DateTime, Timelike, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::domain::verdict_query::QueueClass;
use crate::store::QueueRow;

/// A queue row as the template shows it.
#[derive(Debug, Serialize)]
pub struct RowView {
    id: String,
    href: String,
    /// None: no face was found, nothing was screened (`no_face`).
    label: Option<&'static str>,
    p_fake: Option<f64>,
    /// p_fake as the width of its bar (0 to 100).
    bar: f64,
    /// No face found: "no face" stands where the p_fake bar would.
    no_face: bool,
    forgery_type: Option<String>,
    tenant: Option<String>,
    created_at: String,
    flagged: bool,
    corrected: bool,
    /// Its class (`QueueClass::as_str`) and the heading of its group.
    class: &'static str,
    group: &'static str,
}

impl RowView {
    pub fn of(r: &QueueRow, filters: &str) -> RowView {
        let class = r.class();
        RowView {
            id: r.request_id.to_string(),
            href: verdict_href(r.request_id, filters, class),
            label: r.label.map(|l| l.as_str()),
            p_fake: r.p_fake.map(f64::from),
            bar: r
                .p_fake
                .map_or(0.0, |p| (f64::from(p) * 100.0).clamp(0.0, 100.0)),
            no_face: r.p_fake.is_none(),
            forgery_type: r.forgery_type.map(|t| t.human_name().to_string()),
            tenant: r.tenant.clone(),
            created_at: r.created_at.to_rfc3339(),
            flagged: r.flagged,
            corrected: r.corrected,
            class: class.as_str(),
            group: group(class),
        }
    }
}

fn group(c: QueueClass) -> &'static str {
    match c {
        QueueClass::FlaggedTodo => "Flagged · to review",
        QueueClass::FlaggedDone => "Flagged · corrected",
        QueueClass::Todo => "Not flagged · to review",
        QueueClass::Done => "Not flagged · corrected",
    }
}

/// `/console/verdicts/ID?<filters>&class=C`
pub fn verdict_href(id: Uuid, filters: &str, class: QueueClass) -> String {
    let sep = if filters.is_empty() { "" } else { "&" };
    format!("/console/verdicts/{id}?{filters}{sep}class={class}")
}

/// `/console/queue?<filters>`, from the top.
pub fn queue_href(filters: &str) -> String {
    if filters.is_empty() {
        "/console/queue".to_string()
    } else {
        format!("/console/queue?{filters}")
    }
}

/// `/console/queue?<filters>&cursor=C`
pub fn more_href(filters: &str, cursor: &str) -> String {
    let sep = if filters.is_empty() { "" } else { "&" };
    format!("/console/queue?{filters}{sep}cursor={cursor}")
}

/// What a `datetime-local` input shows for `t`: minutes, or seconds when
/// it has some (the field as typed when it did not parse, or was empty).
pub fn local(t: Option<DateTime<Utc>>, raw: &str) -> String {
    match t {
        Some(t) if t.second() == 0 && t.nanosecond() == 0 => t.format("%Y-%m-%dT%H:%M").to_string(),
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
        None => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_the_filters() {
        let id = Uuid::nil();
        assert_eq!(
            verdict_href(id, "", QueueClass::Todo),
            format!("/console/verdicts/{id}?class=todo")
        );
        assert_eq!(
            verdict_href(id, "tenant=a%26b", QueueClass::FlaggedTodo),
            format!("/console/verdicts/{id}?tenant=a%26b&class=flagged_todo")
        );
        assert_eq!(queue_href(""), "/console/queue");
        assert_eq!(
            queue_href("since=2026-03-01"),
            "/console/queue?since=2026-03-01"
        );
        assert_eq!(more_href("", "c"), "/console/queue?cursor=c");
        assert_eq!(
            more_href("tenant=t", "c"),
            "/console/queue?tenant=t&cursor=c"
        );
    }

    #[test]
    fn time_fields_show_what_datetime_local_takes() {
        let t = |s: &str| Some(s.parse::<DateTime<Utc>>().unwrap());
        assert_eq!(local(t("2026-03-01T10:30:00Z"), "x"), "2026-03-01T10:30");
        assert_eq!(local(t("2026-03-01T10:30:15Z"), "x"), "2026-03-01T10:30:15");
        assert_eq!(local(None, "yesterday"), "yesterday");
    }
}
