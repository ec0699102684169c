//! Reading stored verdicts: the filtered, keyset-paged list
//! (`GET /api/verdicts`), one verdict with its conversation and corrections
//! (`detail`), and its image (`image`). All need `Permission::Read`; a
//! token with a tenant sees only that tenant's verdicts.

mod detail;
mod faces;
mod image;

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::filters::{parse_split, FilterParams, PageParams, PAGE_PARAMS};
use super::state::App;
use crate::domain::access::Permission;
use crate::store::VerdictRow;

pub(crate) use detail::load as load_verdict;
pub use detail::VerdictView;
pub use faces::{FaceView, FacesSkippedView};

pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new()
        .routes(routes!(list_verdicts))
        .routes(routes!(detail::verdict))
        .routes(routes!(image::verdict_image))
}

/// A verdict in a list or an export.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VerdictItem {
    pub request_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub tenant: Option<String>,
    /// `analysed`, or `no_face`: face detection found no face, so nothing
    /// was screened and `label` and `p_fake` are null.
    pub status: String,
    /// `real` or `fake` (the most suspicious face's); null for `no_face`.
    pub label: Option<String>,
    pub p_fake: Option<f32>,
    /// The forgery type of a fake, when the model named one.
    pub forgery_type: Option<String>,
    /// Faces analysed; null when the verdict was made without face
    /// detection (`faces.mode = "off"`).
    pub face_count: Option<u32>,
    /// The adapter that made it (none: the base model).
    pub adapter_id: Option<String>,
    pub image_sha256: String,
    pub explanation: Option<String>,
    /// Whether a reviewer corrected it.
    pub corrected: bool,
    /// The standing (latest) correction's label and forgery type.
    pub correction_label: Option<String>,
    pub correction_forgery_type: Option<String>,
    /// Whether some reviewer's correction contradicts it.
    pub disagreement: bool,
}

impl From<VerdictRow> for VerdictItem {
    fn from(r: VerdictRow) -> Self {
        VerdictItem {
            request_id: r.request_id,
            created_at: r.created_at,
            tenant: r.tenant,
            status: r.status,
            label: r.label.map(|l| l.as_str().to_string()),
            p_fake: r.p_fake,
            forgery_type: r.forgery_type.map(|t| t.as_str().to_string()),
            // The column's check keeps it non-negative.
            face_count: r.face_count.and_then(|n| u32::try_from(n).ok()),
            adapter_id: r.adapter_id,
            image_sha256: r.image_sha256,
            explanation: r.explanation,
            corrected: r.correction_label.is_some(),
            correction_label: r.correction_label.map(|l| l.as_str().to_string()),
            correction_forgery_type: r.correction_forgery_type.map(|t| t.as_str().to_string()),
            disagreement: r.disagreement,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerdictPage {
    /// Newest first (by created_at, then request_id).
    pub items: Vec<VerdictItem>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// Stored verdicts, filtered, newest first, a page at a time.
#[utoipa::path(get, path = "/api/verdicts", tag = "verdicts",
    params(FilterParams, PageParams),
    responses(
        (status = 200, body = VerdictPage),
        (status = 400, body = ErrorBody, description = "a bad parameter, named in `field`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_verdicts(
    State(app): State<Arc<App>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<VerdictPage>, ApiError> {
    caller.require(Permission::Read)?;
    let (filter, page): (FilterParams, PageParams) =
        parse_split(query.as_deref().unwrap_or_default(), PAGE_PARAMS)?;
    let (filter, page) = (filter.check()?, page.check()?);
    let Some(filter) = filter.within(caller.tenant()) else {
        return Ok(Json(VerdictPage {
            items: Vec::new(),
            next_cursor: None,
        }));
    };
    // One more than asked tells whether a next page exists.
    let mut rows = app
        .store
        .verdict_page(&filter, page.after, page.limit + 1)
        .await?;
    let more = rows.len() > page.limit as usize;
    rows.truncate(page.limit as usize);
    let next_cursor = more
        .then(|| rows.last().map(|r| r.keyset().encode()))
        .flatten();
    Ok(Json(VerdictPage {
        items: rows.into_iter().map(VerdictItem::from).collect(),
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_faces_and_status_are_documented() {
        let (_, doc) = super::routes().split_for_parts();
        let doc = serde_json::to_value(doc).unwrap();
        let schemas = &doc["components"]["schemas"];
        let view = &schemas["VerdictView"]["properties"];
        for field in [
            "status",
            "face_mode",
            "face_count",
            "primary_face",
            "faces",
            "faces_skipped",
            "reused_from",
        ] {
            assert!(view[field].is_object(), "VerdictView.{field}: {view}");
        }
        let face = &schemas["FaceView"]["properties"];
        for field in [
            "index",
            "primary",
            "bbox",
            "crop",
            "label",
            "p_fake",
            "artifacts",
        ] {
            assert!(face[field].is_object(), "FaceView.{field}: {face}");
        }
        assert!(schemas["FaceBoxView"]["properties"]["w"].is_object());
        let item = &schemas["VerdictItem"]["properties"];
        assert!(item["status"].is_object() && item["face_count"].is_object());
        let params = doc["paths"]["/api/verdicts"]["get"]["parameters"].to_string();
        assert!(params.contains("\"status\""), "{params}");
    }
}
