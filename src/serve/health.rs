//! `/healthz` (the database, and whether the engine still answers) and
//! `/metrics`; neither needs a token.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::state::App;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

async fn healthz(State(app): State<Arc<App>>) -> impl IntoResponse {
    let database = sqlx::query("SELECT 1")
        .execute(app.store.pool())
        .await
        .is_ok();
    let engine = app.engine.is_running();
    let image_store = tokio::fs::metadata(app.images.dir())
        .await
        .map(|m| m.is_dir())
        .unwrap_or(false);
    let ok = database && engine && image_store;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ok { "ok" } else { "unavailable" },
        "checks": {"database": database, "engine": engine, "image_store": image_store},
    });
    (status, Json(body))
}

async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
}
