//! The adapter registry on the numbers page: the table (admins only, as
//! `GET /api/adapters`), and the admins' promote and rollback forms, which
//! run the API's own code (`serve::adapters::{promote_as, rollback_as}`)
//! and come back to the page with the outcome.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;
use serde_json::Value;

use super::{page_with, Notice, Window};
use crate::domain::adapter::{AdapterOrigin, AdapterStatus};
use crate::serve::adapters::{promote_as, rollback_as, AdapterView};
use crate::serve::console::pages::{ConsoleError, Viewer};
use crate::serve::console::sign_in::CsrfForm;
use crate::serve::error::ApiError;
use crate::serve::state::App;

/// One row of `table#adapters`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdapterRow {
    pub id: String,
    pub status: &'static str,
    pub status_reason: Option<String>,
    pub origin: &'static str,
    pub parent: Option<String>,
    /// RFC 3339 (the template says how long ago).
    pub created: String,
    pub promoted: Option<String>,
    /// The gate's figures, when it ran (`dfa retrain`), in short.
    pub metrics: Vec<String>,
    /// Candidates and retired adapters can be (re)made active.
    pub promotable: bool,
    /// Where its promote form posts.
    pub promote_path: String,
}

fn status_name(s: AdapterStatus) -> &'static str {
    match s {
        AdapterStatus::Candidate => "candidate",
        AdapterStatus::Active => "active",
        AdapterStatus::Rejected => "rejected",
        AdapterStatus::Retired => "retired",
    }
}

impl From<AdapterView> for AdapterRow {
    fn from(a: AdapterView) -> Self {
        AdapterRow {
            status: status_name(a.status),
            promotable: matches!(a.status, AdapterStatus::Candidate | AdapterStatus::Retired),
            origin: match a.origin {
                AdapterOrigin::Retrain => "retrain",
                AdapterOrigin::Import => "import",
            },
            metrics: key_metrics(&a.metrics),
            promote_path: format!("/console/adapters/{}/promote", path_segment(&a.id)),
            created: a.created_at.to_rfc3339(),
            promoted: a.promoted_at.map(|t| t.to_rfc3339()),
            id: a.id,
            status_reason: a.status_reason,
            parent: a.parent_id,
        }
    }
}

/// `id` percent-encoded for a path segment: ids are whatever `dfa lora
/// import --id` was given, slashes and spaces included.
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `{"correct": c, "total": t}` as "c/t".
fn tally(v: &Value) -> Option<String> {
    Some(format!(
        "{}/{}",
        v.get("correct")?.as_u64()?,
        v.get("total")?.as_u64()?
    ))
}

/// What the gate measured (learning::record::Metrics): the candidate's
/// held-out detection and its score on the new corrections against the
/// adapter it was compared with, and its decision. Imported adapters have
/// none; anything unexpected is left out rather than failing the page.
fn key_metrics(m: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let candidate = &m["candidate"];
    if let Some(t) = tally(&candidate["heldout_detection"]) {
        out.push(format!("held-out {t}"));
    }
    if let Some(t) = tally(&candidate["corrected"]) {
        match tally(&m["active"]["corrected"]) {
            Some(before) => out.push(format!("corrections {t} (was {before})")),
            None => out.push(format!("corrections {t}")),
        }
    }
    if let Some(decision) = m["decision"].as_object().and_then(|d| d.keys().next()) {
        out.push(format!("gate: {decision}"));
    }
    out
}

/// The form's CSRF token; a body that is no form has none (and is refused).
fn form_csrf(body: &Bytes) -> Option<String> {
    serde_urlencoded::from_bytes::<CsrfForm>(body)
        .ok()
        .and_then(|f| f.csrf)
}

/// `/console/numbers` with the outcome of a change.
fn back(notice: &Notice) -> Redirect {
    Redirect::to(&format!("/console/numbers?{}", notice.query()))
}

/// Registry refusals (an unknown adapter, a file that fails its check,
/// nothing to roll back) are the admin's to read on the page; anything
/// else (403s included) is the error page.
fn stays_on_page(e: &ApiError) -> bool {
    matches!(e, ApiError::NotFound(_) | ApiError::Conflict(_))
}

async fn refused(app: &App, viewer: &Viewer, e: ApiError) -> Result<Response, ConsoleError> {
    if !stays_on_page(&e) {
        return Err(e.into());
    }
    let status = e.status();
    let html = page_with(
        app,
        viewer,
        &Window::default(),
        Notice::Problem(e.to_string()),
    )
    .await?;
    Ok((status, html).into_response())
}

/// `POST /console/adapters/{id}/promote` (form: `csrf`).
pub async fn promote(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    viewer.check_form(form_csrf(&body).as_deref())?;
    let reason = format!("promoted in the console by {}", viewer.principal().name);
    match promote_as(&app, &viewer.caller(), &id, &reason).await {
        Ok(change) => {
            tracing::info!(who = %viewer.principal().name, adapter = %id, "adapter promoted in the console");
            Ok(back(&Notice::Promoted {
                adapter: change.active.unwrap_or(id),
            })
            .into_response())
        }
        Err(e) => refused(&app, &viewer, e).await,
    }
}

/// `POST /console/adapters/rollback` (form: `csrf`).
pub async fn rollback(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    viewer.check_form(form_csrf(&body).as_deref())?;
    match rollback_as(&app, &viewer.caller()).await {
        Ok(change) => {
            tracing::info!(who = %viewer.principal().name, retired = ?change.retired, "adapter rolled back in the console");
            Ok(back(&Notice::RolledBack {
                retired: change.retired.unwrap_or_default(),
                restored: change.active,
            })
            .into_response())
        }
        Err(e) => refused(&app, &viewer, e).await,
    }
}

#[cfg(test)]
#[path = "adapters_tests.rs"]
mod tests;
