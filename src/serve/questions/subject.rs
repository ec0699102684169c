//! What a follow-up is about, and the conversation the model continues.
//!
//! A verdict with faces screened each face's crop on its own, so a question
//! names one face (by default the most suspicious one, whose verdict the
//! image carries). The model then sees that face's crop, the same square the
//! worker screened, and that face's own conversation: its screening turns
//! and the earlier follow-ups about it, never another face's. A verdict
//! without faces (faces off, the whole-image fallback, or `no_face`) is
//! asked about its whole image; a `no_face` verdict has no screening turns.

use std::sync::Arc;

use uuid::Uuid;

use super::super::error::ApiError;
use super::super::state::App;
use crate::domain::dialogue::{face_conversation_key, verdict_turns, Screened};
use crate::domain::FaceVerdict;
use crate::engine::{AnalysisRequest, Tasks};
use crate::intake::DecodedImage;
use crate::store::{turns_of, DialogueBasis};

/// The face a follow-up is about.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The face asked about; None: the whole image (a verdict without faces).
    pub face: Option<FaceVerdict>,
    /// Whether it is the verdict's own subject (its primary face, or the
    /// whole image): the one the request's own questions were about. Its
    /// turns are stored with `face_index` NULL and keep the verdict's cache
    /// key; any other face's carry its index.
    pub own: bool,
}

impl Subject {
    /// The face's index in the verdict's faces (what the answer reports).
    pub fn index(&self) -> Option<u32> {
        self.face.as_ref().map(|f| f.index)
    }

    /// The `face_index` its turns are stored with, and read back by.
    pub fn stored_index(&self) -> Option<u32> {
        if self.own {
            None
        } else {
            self.index()
        }
    }
}

/// The subject `face` names on the verdict (None: its own subject), or a 400
/// naming `face` when the verdict has no such face.
pub async fn subject(
    app: &App,
    request_id: Uuid,
    basis: &DialogueBasis,
    face: Option<u32>,
) -> Result<Subject, ApiError> {
    // Only a verdict with faces, or a question naming one, needs its faces.
    let Some(wanted) = face.or(basis.primary_face) else {
        return Ok(Subject {
            face: None,
            own: true,
        });
    };
    let faces = app.store.faces(request_id).await?;
    let count = faces.len();
    match faces.into_iter().find(|f| f.index == wanted) {
        Some(found) => Ok(Subject {
            own: basis.primary_face == Some(found.index),
            face: Some(found),
        }),
        None if face.is_some() => Err(ApiError::bad("face", no_such_face(wanted, count))),
        // The worker stores a verdict's faces with it, in one transaction.
        None => Err(ApiError::internal(anyhow::anyhow!(
            "verdict {request_id}: its primary face {wanted} has no faces row"
        ))),
    }
}

fn no_such_face(i: u32, count: usize) -> String {
    match count {
        0 => format!(
            "no face {i}: the verdict has no faces; leave `face` out to ask about the whole image"
        ),
        n => format!("no face {i}: the verdict has {n} face(s), 0 to {}", n - 1),
    }
}

/// A follow-up ready for the engine.
#[derive(Debug)]
pub struct Continuation {
    /// The turn the question takes if the conversation does not move on
    /// while the answer is generated (turns are numbered per verdict).
    pub next_turn: i32,
    pub request: AnalysisRequest,
}

/// The conversation about `subject` so far, the question after it, and the
/// image the model sees: the face's crop, or the whole stored image (a 409
/// when retention has removed it).
pub async fn continuation(
    app: &App,
    request_id: Uuid,
    basis: &DialogueBasis,
    subject: &Subject,
    question: String,
) -> Result<Continuation, ApiError> {
    let records = app.store.conversation(request_id).await?;
    let screened = match (&subject.face, subject.own) {
        (Some(face), false) => Some(Screened::of_face(face)),
        // The verdict's own turns, as the request's own questions saw them
        // (for a face, its primary face's: the image carries its verdict).
        _ => basis.label.map(|label| Screened {
            label,
            forgery_type: basis.forgery_type,
            explanation: basis.explanation.as_deref(),
        }),
    };
    let mut history = screened
        .map(|s| verdict_turns(&app.prompts, &s))
        .unwrap_or_default();
    history.extend(turns_of(&records, subject.stored_index()));
    let image = stored_image(app, &basis.image_sha256).await?;
    let image = match &subject.face {
        Some(face) => app.faces.crop(image, face.crop).await.map_err(|e| {
            ApiError::Conflict(format!(
                "the stored image cannot be cropped to face {}: {e}",
                face.index
            ))
        })?,
        None => image,
    };
    let tasks = Tasks {
        image_key: Some(face_conversation_key(request_id, subject.stored_index())),
        ..Tasks::follow_up(history, question)
    };
    Ok(Continuation {
        next_turn: records.last().map_or(0, |r| r.turn + 1),
        request: AnalysisRequest { image, tasks },
    })
}

/// The verdict's image from the image store, decoded within the budget; a
/// 409 when retention has removed it.
async fn stored_image(app: &App, sha256: &str) -> Result<DecodedImage, ApiError> {
    let (images, key) = (app.images.clone(), sha256.to_string());
    let read = tokio::task::spawn_blocking(move || images.get(&key))
        .await
        .map_err(ApiError::internal)?;
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(e) if e.source.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::Conflict(format!(
                "the image of this verdict is no longer in the image store (images unused for \
                 image_store.retain_days = {} days are deleted); follow-up questions need the image",
                app.settings.image_store.retain_days
            )))
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    let (image, _) = app.intake.decode(Arc::new(bytes)).await;
    image.map_err(|e| ApiError::Conflict(format!("the stored image cannot be decoded: {e}")))
}
