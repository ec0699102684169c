//! `dfa serve`: the HTTP API for trust-and-safety reviewers (read verdicts,
//! ask follow-up questions, correct) and analysts (query, statistics,
//! export), documented as OpenAPI at `/api/openapi.json` (docs/api.md).
//!
//! - `state`: what every handler shares (`App`)
//! - `auth`: bearer tokens → `Caller`, roles → 401/403, tenants → 404
//! - `error`, `extract`: typed errors as JSON, and 400s that name the field
//! - `verdicts`, `stats`, `export`: reading stored verdicts
//! - `questions`: follow-ups through the engine (JSON or SSE)
//! - `corrections`: signed corrections onto the feedback topic
//! - `adapters`: the registry over HTTP (admin)
//! - `health`: `/healthz` and `/metrics`
//! - `session`, `console`: the review console at `/console` (docs/console.md)

pub mod adapters;
pub mod auth;
pub mod console;
pub mod corrections;
pub mod error;
pub mod export;
pub mod extract;
pub mod filters;
pub mod health;
pub mod metrics;
pub mod questions;
pub mod session;
pub mod state;
pub mod stats;
pub mod verdicts;

use std::sync::Arc;

use anyhow::Context;
use axum::serve::ListenerExt;
use axum::Router;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use auth::BearerScheme;
pub use state::App;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "dfa",
        description = "Interactive deepfake analysis: stored verdicts, follow-up questions, corrections, statistics. Every /api route needs `Authorization: Bearer <token>` (`dfa tokens create`), or the review console's session cookie (`dfa_session`), with its CSRF token in `x-csrf-token` on whatever changes something."
    ),
    modifiers(&BearerScheme),
    security(("bearer" = []))
)]
struct ApiDoc;

/// Every route, and the OpenAPI document generated from their annotations.
pub fn router(app: Arc<App>) -> Router {
    let max_body = app.settings.serve.max_body_bytes;
    let (api, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(verdicts::routes())
        .merge(questions::routes())
        .merge(corrections::routes())
        .merge(stats::routes())
        .merge(export::routes())
        .merge(adapters::routes())
        .split_for_parts();
    let doc = Arc::new(doc);
    // Like every /api route it needs a token (any role).
    api.route(
        "/api/openapi.json",
        axum::routing::get(move |_: auth::Caller| {
            let doc = doc.clone();
            async move { axum::Json(doc.as_ref().clone()) }
        }),
    )
    .merge(health::routes())
    .merge(console::routes())
    .layer(axum::extract::DefaultBodyLimit::max(max_body))
    .layer(axum::middleware::from_fn_with_state(
        app.clone(),
        metrics::track,
    ))
    .with_state(app)
}

/// Binds `serve.addr` and serves until `stop`.
pub async fn run(app: Arc<App>, stop: CancellationToken) -> anyhow::Result<()> {
    let addr = app.settings.serve.addr.clone();
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding serve.addr {addr}"))?;
    serve_on(listener, app, stop).await
}

/// Serves on `listener` until `stop`, then lets open requests finish within
/// `serve.shutdown_grace`.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let grace = app.settings.serve.shutdown_grace;
    let bound = listener.local_addr()?;
    tracing::info!(%bound, "dfa serve listening");
    let follower = app.follow_registry(stop.clone());
    let shutdown = stop.clone();
    // Streamed answers are many small writes: send each token at once.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, router(app.clone()))
        .with_graceful_shutdown(async move { shutdown.cancelled().await });
    let served = tokio::spawn(async move { server.await });
    stop.cancelled().await;
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "shutting down; open requests may finish"
    );
    let result = match tokio::time::timeout(grace, served).await {
        Ok(joined) => joined.context("server task")?.context("serving"),
        Err(_) => {
            tracing::warn!("open requests outlived serve.shutdown_grace; closing them");
            Ok(())
        }
    };
    if let Some(f) = follower {
        f.abort();
    }
    result
}
