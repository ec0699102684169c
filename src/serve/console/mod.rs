//! The review console at `/console` (docs/console.md): server-rendered
//! pages for reviewers (queue, verdict: ask, correct) and analysts
//! (numbers), on the same process, data and permissions as the API. The
//! pages' scripts call the `/api` routes with the session cookie.
//!
//! - `pages`: templates (autoescaped), the signed-in `Viewer`, error pages
//! - `sign_in`: sign-in, sign-out, and where `/console` leads
//! - `assets`: the stylesheet and script, embedded in the binary
//! - `queue`, `verdict`, `numbers`: the pages
//! - `headers`: the Content-Security-Policy and friends on every response

mod assets;
mod headers;
mod numbers;
mod pages;
mod queue;
mod sign_in;
mod verdict;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use super::state::App;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/console", get(sign_in::home))
        .route("/console/", get(sign_in::home))
        .route("/console/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/assets/{file}", get(assets::serve))
        .merge(queue::routes())
        .merge(verdict::routes())
        .merge(numbers::routes())
        .layer(axum::middleware::from_fn(headers::secure))
}
