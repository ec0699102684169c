//! `GET /api/verdicts/{request_id}`: one verdict, where its image is, its
//! faces (boxes and per-face verdicts), its conversation (the verdict's own
//! turns, then the stored ones) and its corrections.

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
use crate::domain::FaceVerdict;
use crate::store::{CorrectionRecord, TurnRecord, VerdictDetail};

use super::faces::{FaceView, FacesSkippedView};

#[derive(Debug, Serialize, ToSchema)]
pub struct VerdictView {
    pub request_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub tenant: Option<String>,
    /// `analysed`, or `no_face`: face detection found no face, so nothing
    /// was screened (label, p_fake and type_scores are null).
    pub status: String,
    /// `real` or `fake`: the primary face's (or the whole image's).
    pub label: Option<String>,
    pub p_fake: Option<f32>,
    pub forgery_type: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub type_scores: Option<Value>,
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
    /// How faces were found: `detect`, `whole_image` (no face: the whole
    /// image was analysed) or `off` (the image was analysed whole).
    pub face_mode: String,
    /// Faces analysed; null with `off`.
    pub face_count: Option<u32>,
    /// The `index` of the face whose verdict the image carries (the most
    /// suspicious); null when no face was analysed.
    pub primary_face: Option<u32>,
    /// Every face analysed, largest first.
    pub faces: Vec<FaceView>,
    /// Faces found but not analysed.
    pub faces_skipped: FacesSkippedView,
    /// Set when the same image bytes had been analysed by the same model
    /// and that analysis was reused: the verdict it came from.
    pub reused_from: Option<Uuid>,
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
    /// The face the turn is about (`faces[].index`); null: the whole image.
    pub face: Option<u32>,
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
    let (stored, corrections, faces) = tokio::try_join!(
        app.store.conversation(id),
        app.store.corrections_of(id),
        app.store.faces(id)
    )?;
    Ok(view(app, v, &stored, corrections, faces))
}

fn view(
    app: &App,
    v: VerdictDetail,
    stored: &[TurnRecord],
    corrections: Vec<CorrectionRecord>,
    faces: Vec<FaceVerdict>,
) -> VerdictView {
    // A `no_face` verdict screened nothing: it has no turns of its own.
    let screened = v.label.map(|label| Screened {
        label,
        forgery_type: v.forgery_type,
        explanation: v.explanation.as_deref(),
    });
    let own_turns = screened
        .map(|s| verdict_turns(&app.prompts, &s))
        .unwrap_or_default();
    let primary_face = v.primary_face.and_then(|i| u32::try_from(i).ok());
    let mut conversation = Vec::new();
    for t in own_turns {
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
                face: primary_face,
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
        face: r.face(primary_face),
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
        status: v.status,
        label: v.label.map(|l| l.as_str().into()),
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
        face_mode: v.face_mode,
        // The columns' checks keep these non-negative.
        face_count: v.face_count.and_then(|n| u32::try_from(n).ok()),
        primary_face,
        faces: faces
            .into_iter()
            .map(|f| FaceView::of(f, primary_face))
            .collect(),
        faces_skipped: FacesSkippedView::of(&v.faces_skipped),
        reused_from: v.reused_from,
    }
}
