//! The reviewers' queue: `GET /console/queue`, verdicts to review, flagged
//! first, uncorrected before corrected, newest first
//! (`domain::verdict_query::queue`), filtered and keyset-paged; and
//! `GET /console/queue/next?after=ID`, which sends the verdict page's
//! "next" to the verdict after ID in that order.
//!
//! Links carry the filter query (`FilterForm::query`) from the queue to a
//! verdict and back, plus `class`, the verdict's class when the queue
//! listed it: after a reviewer corrects a flagged verdict, it has moved
//! among the corrected ones, yet "next" should go on with the flagged
//! uncorrected verdicts after it, not with the corrected ones.

mod form;
mod view;

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use minijinja::context;
use uuid::Uuid;

use self::form::QueueQuery;
use self::view::{local, more_href, queue_href, verdict_href, RowView};
use super::pages::{page, ConsoleError, Viewer};
use crate::domain::access::Permission;
use crate::domain::verdict_query::{Flagging, QueueClass, QueueKey, VerdictFilter};
use crate::domain::ForgeryType;
use crate::serve::state::App;
use crate::store::QueueRow;

/// The header counts the flagged verdicts to review up to here ("1000+").
const COUNT_CAP: u32 = 1000;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/console/queue", get(show))
        .route("/console/queue/next", get(next))
}

pub(super) fn flagging(app: &App) -> Flagging {
    Flagging {
        threshold: app.settings.analysis.threshold,
        near: app.settings.console.near_threshold,
    }
}

/// One page of the queue.
struct Listing {
    rows: Vec<QueueRow>,
    more: Option<String>,
    /// Flagged and uncorrected, up to `COUNT_CAP` (first page only).
    todo: Option<u32>,
}

async fn list(
    app: &App,
    filter: Option<&VerdictFilter>,
    after: Option<QueueKey>,
) -> Result<Listing, ConsoleError> {
    // Another tenant's filter matches nothing (`VerdictFilter::within`).
    let Some(filter) = filter else {
        return Ok(Listing {
            rows: Vec::new(),
            more: None,
            todo: after.is_none().then_some(0),
        });
    };
    let size = app.settings.console.page_size;
    let rule = flagging(app);
    // One more than a page tells whether another follows.
    let mut rows = app.store.queue_page(filter, rule, after, size + 1).await?;
    let more = rows.len() > size as usize;
    rows.truncate(size as usize);
    let todo = match after {
        None => Some(
            app.store
                .queue_count(filter, rule, QueueClass::FlaggedTodo, COUNT_CAP)
                .await?,
        ),
        Some(_) => None,
    };
    Ok(Listing {
        more: more
            .then(|| rows.last().map(|r| r.key().encode()))
            .flatten(),
        rows,
        todo,
    })
}

async fn show(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> Result<Response, ConsoleError> {
    let caller = viewer.caller();
    caller.require(Permission::Read)?;
    let q = QueueQuery::parse(raw.as_deref().unwrap_or_default());
    let filters = q.form.query();
    let checked = q.form.check().map_err(|e| e.to_string()).and_then(|f| {
        let after = q
            .cursor
            .as_deref()
            .map(QueueKey::decode)
            .transpose()
            .map_err(|_| "this page link is no longer valid: start again from the first page")?;
        Ok((f, after))
    });
    let (since_local, until_local) = match &checked {
        Ok((f, _)) => (local(f.since, &q.form.since), local(f.until, &q.form.until)),
        Err(_) => (q.form.since.clone(), q.form.until.clone()),
    };
    let (listing, problem, after) = match checked {
        Ok((filter, after)) => {
            let within = filter.within(caller.tenant());
            (list(&app, within.as_ref(), after).await?, None, after)
        }
        Err(problem) => (
            Listing {
                rows: Vec::new(),
                more: None,
                todo: None,
            },
            Some(problem),
            None,
        ),
    };
    // A filter or cursor the queue cannot use: the page, saying why.
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let rows: Vec<RowView> = listing
        .rows
        .iter()
        .map(|r| RowView::of(r, &filters))
        .collect();
    let more_href = listing.more.map(|c| more_href(&filters, &c));
    let rule = flagging(&app);
    let html = page(
        &viewer,
        "queue.html",
        "queue",
        context! {
            rows,
            problem,
            form => &q.form,
            since_local,
            until_local,
            filtered => !q.form.is_empty(),
            ask_tenant => caller.tenant().is_none(),
            types => ForgeryType::ALL.map(|t| (t.as_str(), t.human_name())),
            todo => listing.todo,
            todo_capped => listing.todo == Some(COUNT_CAP),
            first_page => after.is_none(),
            first_href => queue_href(&filters),
            more_href,
            threshold => f64::from(rule.threshold),
            threshold_x => f64::from(rule.threshold) * 100.0,
            near => f64::from(rule.near),
        },
    )?;
    Ok((status, html).into_response())
}

async fn next(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    RawQuery(raw): RawQuery,
) -> Result<Response, ConsoleError> {
    let caller = viewer.caller();
    caller.require(Permission::Read)?;
    let q = QueueQuery::parse(raw.as_deref().unwrap_or_default());
    let filters = q.form.query();
    let to_queue = Redirect::to(&queue_href(&filters)).into_response();
    // A bad filter: the queue says what is wrong with it.
    let Ok(filter) = q.form.check() else {
        return Ok(to_queue);
    };
    let Some(filter) = filter.within(caller.tenant()) else {
        return Ok(to_queue);
    };
    let Some(after) = q.after.as_deref().and_then(|a| Uuid::parse_str(a).ok()) else {
        return Ok(to_queue);
    };
    let rule = flagging(&app);
    let Some(current) = app
        .store
        .queue_row(after, rule)
        .await?
        .filter(|r| caller.sees(r.tenant.as_deref()))
    else {
        return Ok(to_queue);
    };
    let mut key = current.key();
    key.class = listed_class(current.class(), q.class.as_deref());
    match app
        .store
        .queue_page(&filter, rule, Some(key), 1)
        .await?
        .first()
    {
        Some(r) => {
            Ok(Redirect::to(&verdict_href(r.request_id, &filters, r.class())).into_response())
        }
        None => Ok(to_queue),
    }
}

/// Where a verdict stood when the queue listed it: the `class` its link
/// carried, when that is where it can have been (classes only rise, and
/// never between flagged and not); else where it stands now.
fn listed_class(now: QueueClass, hint: Option<&str>) -> QueueClass {
    match hint.and_then(|h| h.parse::<QueueClass>().ok()) {
        Some(then) if then <= now && then.flagged() == now.flagged() => then,
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_goes_on_from_where_the_queue_listed_a_verdict() {
        use QueueClass::*;
        // Corrected since: next goes on among the uncorrected flagged ones.
        assert_eq!(listed_class(FlaggedDone, Some("flagged_todo")), FlaggedTodo);
        assert_eq!(listed_class(Done, Some("todo")), Todo);
        // No hint, a bad one, or one it cannot have been: where it is now.
        assert_eq!(listed_class(FlaggedDone, None), FlaggedDone);
        assert_eq!(listed_class(FlaggedDone, Some("soon")), FlaggedDone);
        assert_eq!(listed_class(FlaggedTodo, Some("flagged_done")), FlaggedTodo);
        assert_eq!(listed_class(Done, Some("flagged_todo")), Done);
        assert_eq!(listed_class(Todo, Some("todo")), Todo);
    }
}
