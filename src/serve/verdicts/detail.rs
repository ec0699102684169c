//! `GET /api/verdicts/{request_id}`: one verdict, where its image is, its
//! conversation (the verdict's own turns, then the stored ones) and its
//! corrections.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::super::auth::Caller;
use super::super::error::{ApiError, ErrorBody};
use super::super::extract::verdict_id;
use super::super::state::App;
use crate::domain::access::Permission;
use crate::domain::dialogue::{verdict_turns, Screened};
use crate::store::{CorrectionRecord, TurnRecord, VerdictDetail};

#[derive(Debug, Serialize, ToSchema)]
pub struct VerdictView {
    pub request_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub tenant: Option<String>,
    /// `real` or `fake`.
    pub label: String,
    pub p_fake: f32,
    pub forgery_type: Option<String>,
    #[schema(value_type = Object)]
    pub type_scores: Value,
    #[schema(value_type = Vec<Object>)]
    pub artifacts: Value,
    pub explanation: Option<String>,
    /// Answers to the questions asked with the request.
    #[schema(value_type = Vec<Object>)]
    pub answers: Value,
    pub adapter_id: Option<String>,
    pub adapter_sha256: Option<String>,
    pub base_model_sha256: String,
    pub mmproj_sha256: String,
    pub processing_ms: f64,
    /// The request's metadata, as sent.
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub image: ImageRef,
    pub conversation: Vec<TurnView>,
    /// One per reviewer, oldest first: the last is the standing one.
    pub corrections: Vec<CorrectionView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImageRef {
    pub sha256: String,
    /// Where the request's image came from (its URL, path, or `inline`).
    pub source: String,
    /// The stored bytes (`GET`, same token).
    pub url: String,
}

/// One turn of the conversation DFA-GPT holds about the image.
#[derive(Debug, Serialize, ToSchema)]
pub struct TurnView {
    /// Who asked (a token's name); null for the request's own questions,
    /// the verdict's turns and answers.
    pub author: Option<String>,
    /// `user` or `assistant`.
    pub role: String,
    pub text: String,
    /// The adapter that answered (assistant turns; null: the base model).
    pub adapter: Option<String>,
    pub time: DateTime<Utc>,
    /// True for the verdict's own turns (detection, classification,
    /// artifact description), told from the verdict rather than stored.
    pub screening: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CorrectionView {
    pub reviewer: String,
    /// `real` or `fake`.
    pub label: String,
    pub forgery_type: Option<String>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub artifacts: Option<Value>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// One stored verdict with its image reference, conversation and
/// corrections. An unknown id, a malformed one, or another tenant's: 404.
#[utoipa::path(get, path = "/api/verdicts/{request_id}", tag = "verdicts",
    params(("request_id" = String, Path, description = "the verdict's request id (a UUID)")),
    responses(
        (status = 200, body = VerdictView),
        (status = 404, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn verdict(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<VerdictView>, ApiError> {
    load(&app, &caller, &raw).await.map(Json)
}

/// The verdict at `raw_id` (a path segment) as `caller` may see it: the
/// API's route and the console's verdict page both read it here, so they
/// apply the same permission and tenant checks.
pub(crate) async fn load(
    app: &App,
    caller: &Caller,
    raw_id: &str,
) -> Result<VerdictView, ApiError> {
    caller.require(Permission::Read)?;
    let id = verdict_id(raw_id)?;
    let v = app
        .store
        .verdict_detail(id)
        .await?
        .filter(|v| caller.sees(v.tenant.as_deref()))
        .ok_or(ApiError::NotFound("verdict"))?;
    let (stored, corrections) =
        tokio::try_join!(app.store.conversation(id), app.store.corrections_of(id))?;
    Ok(view(app, v, &stored, corrections))
}

fn view(
    app: &App,
    v: VerdictDetail,
    stored: &[TurnRecord],
    corrections: Vec<CorrectionRecord>,
) -> VerdictView {
    let screened = Screened {
        label: v.label,
        forgery_type: v.forgery_type,
        explanation: v.explanation.as_deref(),
    };
    let mut conversation = Vec::new();
    for t in verdict_turns(&app.prompts, &screened) {
        for (role, text, adapter) in [
            ("user", t.question, None),
            ("assistant", t.answer, v.adapter_id.clone()),
        ] {
            conversation.push(TurnView {
                author: None,
                role: role.into(),
                text,
                adapter,
                time: v.created_at,
                screening: true,
            });
        }
    }
    conversation.extend(stored.iter().map(|r| TurnView {
        author: r.author.clone(),
        role: r.role.clone(),
        text: r.content.clone(),
        adapter: r.adapter_id.clone(),
        time: r.created_at,
        screening: false,
    }));
    VerdictView {
        image: ImageRef {
            url: format!("/api/verdicts/{}/image", v.request_id),
            sha256: v.image_sha256,
            source: v.image_source,
        },
        conversation,
        corrections: corrections
            .into_iter()
            .map(|c| CorrectionView {
                reviewer: c.reviewer,
                label: c.label.as_str().into(),
                forgery_type: c.forgery_type.map(|t| t.as_str().into()),
                artifacts: c.artifacts,
                note: c.note,
                created_at: c.created_at,
            })
            .collect(),
        request_id: v.request_id,
        created_at: v.created_at,
        tenant: v.tenant,
        label: v.label.as_str().into(),
        p_fake: v.p_fake,
        forgery_type: v.forgery_type.map(|t| t.as_str().into()),
        type_scores: v.type_scores,
        artifacts: v.artifacts,
        explanation: v.explanation,
        answers: v.answers,
        adapter_id: v.adapter_id,
        adapter_sha256: v.adapter_sha256,
        base_model_sha256: v.base_model_sha256,
        mmproj_sha256: v.mmproj_sha256,
        processing_ms: v.processing_ms,
        metadata: v.metadata,
    }
}
