//! The adapter registry over HTTP (admin only): list, promote, roll back.
//! Workers and `dfa serve` itself pick up the change by following the registry.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::parse_json;
use super::state::App;
use crate::domain::access::Permission;
use crate::domain::adapter::{AdapterOrigin, AdapterRecord, AdapterStatus};
use crate::registry::{promote, PromoteError};
use crate::store::RegistryError;

pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(list_adapters))
        .routes(routes!(promote_adapter))
        .routes(routes!(rollback_adapter))
}

/// A registry entry (the training-data snapshot and hyper-parameters are
/// in `dfa adapters list`).
#[derive(Debug, Serialize, ToSchema)]
pub struct AdapterView {
    pub id: String,
    /// `candidate`, `active`, `rejected` or `retired`.
    #[schema(value_type = String)]
    pub status: AdapterStatus,
    pub status_reason: Option<String>,
    pub parent_id: Option<String>,
    pub sha256: String,
    /// `retrain` or `import`.
    #[schema(value_type = String)]
    pub origin: AdapterOrigin,
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub promoted_at: Option<DateTime<Utc>>,
    pub retired_at: Option<DateTime<Utc>>,
}

impl From<AdapterRecord> for AdapterView {
    fn from(r: AdapterRecord) -> Self {
        AdapterView {
            status: r.status,
            origin: r.origin,
            id: r.id,
            status_reason: r.status_reason,
            parent_id: r.parent_id,
            sha256: r.sha256,
            metrics: r.metrics,
            created_at: r.created_at,
            promoted_at: r.promoted_at,
            retired_at: r.retired_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdapterList {
    pub items: Vec<AdapterView>,
}

/// Every adapter in the registry, newest first.
#[utoipa::path(get, path = "/api/adapters", tag = "adapters",
    responses(
        (status = 200, body = AdapterList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_adapters(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<Json<AdapterList>, ApiError> {
    Ok(Json(AdapterList {
        items: list(&app, &caller).await?,
    }))
}

/// The registry, newest first, for `caller` (admins of no tenant): this
/// route and the console's numbers page both show this.
pub(crate) async fn list(app: &App, caller: &Caller) -> Result<Vec<AdapterView>, ApiError> {
    caller.require(Permission::Adapters)?;
    let mut rows = app.store.list_adapters().await?;
    rows.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    Ok(rows.into_iter().map(AdapterView::from).collect())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteBody {
    /// Recorded as the promotion's reason.
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegistryChange {
    /// The adapter now active (none: the base model, or `model.adapter`).
    pub active: Option<String>,
    /// The adapter retired by this change.
    pub retired: Option<String>,
}

/// Makes an adapter active after checking its file; workers switch to it
/// within `adapters.poll_interval`.
#[utoipa::path(post, path = "/api/adapters/{id}/promote", tag = "adapters",
    params(("id" = String, Path, description = "adapter id")),
    request_body(content = PromoteBody, description = "optional"),
    responses(
        (status = 200, body = RegistryChange),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn promote_adapter(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<RegistryChange>, ApiError> {
    caller.require(Permission::Adapters)?;
    let body: PromoteBody = if body.is_empty() {
        PromoteBody::default()
    } else {
        parse_json(&body)?
    };
    let reason = body
        .reason
        .unwrap_or_else(|| format!("promoted over HTTP by {}", caller.name()));
    Ok(Json(promote_as(&app, &caller, &id, &reason).await?))
}

/// Promotes `id` for `caller` (the registry's checks first), recording
/// `reason`: the API's route and the console's form both do exactly this.
pub(crate) async fn promote_as(
    app: &App,
    caller: &Caller,
    id: &str,
    reason: &str,
) -> Result<RegistryChange, ApiError> {
    caller.require(Permission::Adapters)?;
    let previous = app.store.active_adapter_ref().await?.map(|a| a.id);
    match promote(&app.store, &app.settings, id, reason).await {
        Ok(()) => Ok(RegistryChange {
            retired: previous.filter(|p| p != id),
            active: Some(id.to_string()),
        }),
        Err(PromoteError::NotFound(_) | PromoteError::Registry(RegistryError::NotFound(_))) => {
            Err(ApiError::NotFound("adapter"))
        }
        Err(PromoteError::Unverified(e)) => Err(ApiError::Conflict(format!("not promoting: {e}"))),
        Err(PromoteError::Store(e)) => Err(e.into()),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// Retires the active adapter and restores the one it replaced.
#[utoipa::path(post, path = "/api/adapters/rollback", tag = "adapters",
    responses(
        (status = 200, body = RegistryChange),
        (status = 409, body = ErrorBody, description = "no adapter is active"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn rollback_adapter(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<Json<RegistryChange>, ApiError> {
    Ok(Json(rollback_as(&app, &caller).await?))
}

/// Rolls the registry back for `caller`: the API's route and the console's
/// form both do exactly this.
pub(crate) async fn rollback_as(app: &App, caller: &Caller) -> Result<RegistryChange, ApiError> {
    caller.require(Permission::Adapters)?;
    match app.store.rollback_adapter().await {
        Ok((retired, restored)) => Ok(RegistryChange {
            active: restored,
            retired: Some(retired),
        }),
        Err(RegistryError::NothingActive) => Err(ApiError::Conflict(
            "no adapter is active; nothing to roll back".into(),
        )),
        Err(e) => Err(ApiError::internal(e)),
    }
}
