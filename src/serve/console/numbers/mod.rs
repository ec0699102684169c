//! The numbers page (`Permission::Stats`: analysts and admins): headline
//! numbers and four charts over a window of days, from the same figures as
//! `GET /api/stats` (`serve::stats::load`), drawn as SVG on the server; and
//! for admins the adapter registry with promote and rollback.
//!
//! - `charts`: chart geometry (pure; the template only draws it)
//! - `figures`: the stats as headlines and charts
//! - `adapters`: the registry table and its forms

mod adapters;
mod charts;
mod figures;

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Html;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Duration, Utc};
use minijinja::context;
use serde::Deserialize;

use super::pages::{page, ConsoleError, Viewer};
use crate::domain::access::Permission;
use crate::domain::verdict_query::Bucket;
use crate::serve::error::ApiError;
use crate::serve::extract::parse_query;
use crate::serve::filters::StatsRequest;
use crate::serve::state::App;
use crate::serve::{adapters as registry, stats};

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/console/numbers", get(show))
        .route("/console/adapters/{id}/promote", post(adapters::promote))
        .route("/console/adapters/rollback", post(adapters::rollback))
}

/// The windows the form offers (any 1 to `MAX_DAYS` is accepted).
const DAYS: [u32; 3] = [7, 30, 90];
const MAX_DAYS: u32 = 366;

/// The page's query: the window, and the outcome of an admin's change.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NumbersQuery {
    days: Option<u32>,
    bucket: Option<Bucket>,
    /// Blank (the form's empty field): every tenant the viewer sees.
    tenant: Option<String>,
    done: Option<Done>,
    adapter: Option<String>,
    restored: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Done {
    Promoted,
    RolledBack,
}

/// Which verdicts the page counts: the last `days` days (today, in UTC,
/// being the last), by `bucket`.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub days: u32,
    pub bucket: Bucket,
    pub tenant: Option<String>,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            days: 30,
            bucket: Bucket::Day,
            tenant: None,
        }
    }
}

impl Window {
    fn parse(q: &NumbersQuery) -> Result<Window, ApiError> {
        let days = q.days.unwrap_or(30);
        if !(1..=MAX_DAYS).contains(&days) {
            return Err(ApiError::bad("days", format!("from 1 to {MAX_DAYS}")));
        }
        let bucket = q.bucket.unwrap_or(Bucket::Day);
        if bucket == Bucket::Hour {
            return Err(ApiError::bad("bucket", "`day` or `week`"));
        }
        let tenant = q.tenant.as_deref().map(str::trim).filter(|t| !t.is_empty());
        if tenant.is_some_and(|t| t.chars().count() > 200) {
            return Err(ApiError::bad("tenant", "at most 200 characters"));
        }
        Ok(Window {
            days,
            bucket,
            tenant: tenant.map(str::to_string),
        })
    }

    /// Whole buckets from the one holding the window's first day, to now:
    /// every bar of the chart is a whole day or week but the current one.
    fn request(&self, now: DateTime<Utc>) -> StatsRequest {
        let first_day = Bucket::Day.start_of(now) - Duration::days(i64::from(self.days) - 1);
        StatsRequest {
            since: self.bucket.start_of(first_day),
            until: now,
            bucket: self.bucket,
            tenant: self.tenant.clone(),
        }
    }
}

/// A line above the page about what just happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    None,
    Promoted {
        adapter: String,
    },
    RolledBack {
        retired: String,
        restored: Option<String>,
    },
    /// The registry refused (shown escaped, like every value).
    Problem(String),
}

impl Notice {
    fn from_query(q: &NumbersQuery) -> Notice {
        match (q.done, &q.adapter) {
            (Some(Done::Promoted), Some(adapter)) => Notice::Promoted {
                adapter: adapter.clone(),
            },
            (Some(Done::RolledBack), Some(retired)) => Notice::RolledBack {
                retired: retired.clone(),
                restored: q.restored.clone(),
            },
            _ => Notice::None,
        }
    }

    /// The query that brings the notice back after a redirect.
    fn query(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        match self {
            Notice::Promoted { adapter } => {
                q.append_pair("done", "promoted")
                    .append_pair("adapter", adapter);
            }
            Notice::RolledBack { retired, restored } => {
                q.append_pair("done", "rolled_back")
                    .append_pair("adapter", retired);
                if let Some(r) = restored {
                    q.append_pair("restored", r);
                }
            }
            Notice::None | Notice::Problem(_) => {}
        }
        q.finish()
    }

    /// The sentence, and whether it reports a success. A notice only says
    /// what the registry shows: a crafted link cannot make the page claim
    /// a promotion of an adapter that is not active, or any change of one
    /// that does not exist.
    fn sentence(&self, known: &[adapters::AdapterRow]) -> Option<(String, bool)> {
        let exists = |id: &str| known.iter().any(|a| a.id == id);
        let active = |id: &str| known.iter().any(|a| a.id == id && a.status == "active");
        match self {
            Notice::None => None,
            Notice::Promoted { adapter } if active(adapter) => Some((
                format!("Promoted {adapter}: workers and this server switch to it within seconds."),
                true,
            )),
            Notice::RolledBack { retired, restored } if exists(retired) && !active(retired) => {
                let now = match restored {
                    Some(r) if active(r) => format!("{r} is active again"),
                    _ => "the base model serves again".into(),
                };
                Some((format!("Rolled back {retired}: {now}."), true))
            }
            Notice::Problem(p) => Some((p.clone(), false)),
            _ => None,
        }
    }
}

async fn show(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    RawQuery(query): RawQuery,
) -> Result<Html<String>, ConsoleError> {
    viewer.caller().require(Permission::Stats)?;
    let q: NumbersQuery = parse_query(query.as_deref().unwrap_or_default())?;
    let window = Window::parse(&q)?;
    page_with(&app, &viewer, &window, Notice::from_query(&q)).await
}

/// The page for `window`, with `notice` on top.
async fn page_with(
    app: &App,
    viewer: &Viewer,
    window: &Window,
    notice: Notice,
) -> Result<Html<String>, ConsoleError> {
    let caller = viewer.caller();
    let req = window.request(Utc::now());
    let s = stats::load(app, &caller, &req).await?;
    // The registry is the admins' (as `GET /api/adapters`): analysts see
    // the per-adapter agreement, not the registry itself.
    let registry_rows = if viewer.may(Permission::Adapters) {
        let list = registry::list(app, &caller).await?;
        Some(
            list.into_iter()
                .map(adapters::AdapterRow::from)
                .collect::<Vec<_>>(),
        )
    } else {
        None
    };
    let threshold = f64::from(app.settings.analysis.threshold);
    page(
        viewer,
        "numbers.html",
        "numbers",
        page_context(window, &req, &s, registry_rows, &notice, threshold),
    )
}

/// What the template shows: everything but the viewer.
fn page_context(
    window: &Window,
    req: &StatsRequest,
    s: &stats::Stats,
    registry_rows: Option<Vec<adapters::AdapterRow>>,
    notice: &Notice,
    threshold: f64,
) -> minijinja::Value {
    let notice = notice.sentence(registry_rows.as_deref().unwrap_or_default());
    let active = registry_rows.as_ref().and_then(|rows| {
        rows.iter()
            .find(|a| a.status == "active")
            .map(|a| a.id.clone())
    });
    let charts = [
        figures::daily(s),
        figures::types(s),
        figures::histogram(s, threshold),
        figures::agreement(s),
    ];
    context! {
        window => context! {
            days => window.days,
            bucket => window.bucket.as_str(),
            tenant => window.tenant,
            day_choices => DAYS,
        },
        range => format!(
            "{} – {} (UTC)",
            req.since.format("%-d %b %Y"),
            req.until.format("%-d %b %Y %H:%M")
        ),
        headlines => figures::headlines(s),
        charts,
        threshold,
        adapters => registry_rows,
        active,
        notice => notice.as_ref().map(|(text, _)| text),
        notice_ok => notice.as_ref().is_some_and(|(_, ok)| *ok),
    }
}

#[cfg(test)]
mod tests;
