//! From image bytes to a `Verdict`: intake, the face stage, the model stage,
//! and assembly. Shared by the CLI and the worker.
//!
//! With `faces.mode` `detect` or `whole_image`, every face found is cropped
//! and screened as its own engine job (they batch with everything else);
//! the image's verdict is its most suspicious face's (`assemble`).
//!
//! A request's own questions are asked after its verdict, as reviewers'
//! follow-ups are: the image is screened first, then the questions see the
//! verdict's turns (`domain::dialogue`) as their history, so a question
//! sent with the request and the same question asked over HTTP read the
//! same conversation. They are about the most suspicious face.

mod assemble;

use std::sync::Arc;
use std::time::Instant;

use futures::future::try_join_all;
use uuid::Uuid;

use assemble::clean_answers;
pub use assemble::{
    assemble_verdict, face_verdict, image_verdict, no_face_verdict, reused_verdict,
};

use crate::domain::dialogue::{history, Screened};
use crate::domain::{FaceMode, Verdict};
use crate::engine::{Analysis, AnalysisRequest, Backend, EngineError, Explain, Tasks};
use crate::faces::{FaceError, FaceStage};
use crate::intake::{DecodedImage, ImageError, Intake};
use crate::settings::AnalysisSettings;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Faces(#[from] FaceError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl AnalyzeError {
    /// Stable machine-readable kind for outputs and dead-letter headers.
    pub fn kind(&self) -> &'static str {
        match self {
            AnalyzeError::Image(e) => e.kind(),
            AnalyzeError::Faces(e) => e.kind(),
            AnalyzeError::Engine(e) => e.kind(),
        }
    }
}

/// The stages around the engine, as a process configured them.
#[derive(Clone, Copy)]
pub struct Stages<'a> {
    /// Decoding within the process's decode budget.
    pub intake: &'a Intake,
    pub analysis: &'a AnalysisSettings,
    pub faces: &'a FaceStage,
}

/// Screens one image and assembles its verdict; the tasks' questions, if
/// any, are then asked after the verdict's turns (a second engine job on the
/// same `image_key`, whose cached state it can reuse). The image is decoded
/// within `intake`'s budget, and its share is held until the engine has made
/// its own input from it (or its crops).
pub async fn analyze_bytes<B: Backend>(
    backend: &B,
    request_id: Uuid,
    bytes: Arc<Vec<u8>>,
    tasks: Tasks,
    stages: Stages<'_>,
) -> Result<Verdict, AnalyzeError> {
    analyze(backend, request_id, bytes, tasks, stages, None).await
}

/// As `analyze_bytes`, with the screening taken from `prior`, a verdict on
/// the same bytes by the same model (`reused_verdict`): only the request's
/// questions, if any, reach the engine.
pub async fn analyze_reusing<B: Backend>(
    backend: &B,
    request_id: Uuid,
    bytes: Arc<Vec<u8>>,
    tasks: Tasks,
    stages: Stages<'_>,
    prior: &Verdict,
) -> Result<Verdict, AnalyzeError> {
    analyze(backend, request_id, bytes, tasks, stages, Some(prior)).await
}

async fn analyze<B: Backend>(
    backend: &B,
    request_id: Uuid,
    bytes: Arc<Vec<u8>>,
    tasks: Tasks,
    stages: Stages<'_>,
    prior: Option<&Verdict>,
) -> Result<Verdict, AnalyzeError> {
    let started = Instant::now();
    let (screening, questions) = split_questions(tasks);
    let mut prior = prior;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut verdict = match prior {
            Some(prior) => reused_verdict(request_id, prior, stages.analysis.threshold),
            None => match screen(backend, request_id, bytes.clone(), &screening, stages).await? {
                Some(verdict) => verdict,
                // An adapter swap landed between the faces' jobs.
                None if attempt < SAME_MODEL_ATTEMPTS => continue,
                None => return Err(EngineError::Adapter(MIXED_MODELS.into()).into()),
            },
        };
        if let Some(questions) = &questions {
            let tasks = Tasks {
                history: match verdict.label {
                    Some(label) => history(
                        backend.prompts(),
                        &Screened {
                            label,
                            forgery_type: verdict.forgery_type,
                            explanation: verdict.explanation.as_deref(),
                        },
                        &questions.history,
                    ),
                    None => questions.history.clone(),
                },
                ..questions.clone()
            };
            // Decoded again rather than kept: a copy held while the screening
            // waits in the engine's queue would sit outside the decode budget.
            let (image, decode_ms) = stages.intake.decode(bytes.clone()).await;
            let image = subject_of(&verdict, image?, stages.faces).await?;
            let answered = backend.analyze(AnalysisRequest { image, tasks }).await?;
            // An adapter swap landed between the two jobs: the answers came
            // from another model than the verdict, which records one. Both
            // are made again (swaps are rare), unless an answer was already
            // streamed to someone.
            if answered.model != verdict.model
                && questions.stream.is_none()
                && attempt < SAME_MODEL_ATTEMPTS
            {
                // A reused analysis is of the model swapped out: screen afresh.
                prior = None;
                continue;
            }
            add_answers(&mut verdict, answered, decode_ms);
        }
        verdict.timings_ms.total = started.elapsed().as_secs_f64() * 1000.0;
        return Ok(verdict);
    }
}

/// Attempts at a verdict whose screening and questions one model answered.
const SAME_MODEL_ATTEMPTS: usize = 3;

const MIXED_MODELS: &str = "adapters were swapped while the faces were screened, every attempt";

/// The image questions are asked about: the verdict's most suspicious face,
/// cropped as it was screened, or the whole image.
pub async fn subject_of(
    verdict: &Verdict,
    image: DecodedImage,
    faces: &FaceStage,
) -> Result<DecodedImage, FaceError> {
    match verdict.primary() {
        Some(face) => faces.crop(image, face.crop).await,
        None => Ok(image),
    }
}

/// The screening by the stages' face mode; None when the faces' answers
/// came from different models (an adapter swap in between).
async fn screen<B: Backend>(
    backend: &B,
    request_id: Uuid,
    bytes: Arc<Vec<u8>>,
    tasks: &Tasks,
    stages: Stages<'_>,
) -> Result<Option<Verdict>, AnalyzeError> {
    let threshold = stages.analysis.threshold;
    let (image, decode_ms) = stages.intake.decode(bytes).await;
    let image = image?;
    let mode = stages.faces.mode();
    let whole = |image: DecodedImage| async move {
        let a = backend
            .analyze(AnalysisRequest {
                image,
                tasks: tasks.clone(),
            })
            .await?;
        Ok::<Verdict, AnalyzeError>(assemble_verdict(request_id, a, threshold))
    };
    if mode == FaceMode::Off {
        let mut verdict = whole(image).await?;
        verdict.timings_ms.decode_image = decode_ms;
        return Ok(Some(verdict));
    }
    let found = stages.faces.find(image).await?;
    let mut verdict = match (found.unsplit, mode) {
        (Some(_), FaceMode::Detect) => no_face_verdict(request_id, found.skipped, backend.model()),
        (Some(image), _) => Verdict {
            face_mode: mode,
            face_count: Some(0),
            faces_skipped: found.skipped,
            ..whole(image).await?
        },
        (None, _) => {
            // Only a lone face's screening is worth keeping for the
            // questions that follow: they are asked of that same crop.
            let keep_key = found.crops.len() == 1;
            let jobs = found.crops.into_iter().map(|image| {
                let tasks = Tasks {
                    image_key: tasks.image_key.clone().filter(|_| keep_key),
                    ..tasks.clone()
                };
                backend.analyze(AnalysisRequest { image, tasks })
            });
            let analyses: Vec<Analysis> = try_join_all(jobs).await?;
            let model = analyses[0].model.clone();
            if analyses.iter().any(|a| a.model != model) {
                return Ok(None);
            }
            let engine: Vec<_> = analyses.iter().map(|a| a.timings).collect();
            let faces = found
                .faces
                .iter()
                .zip(analyses)
                .zip(0u32..)
                .map(|((f, a), i)| face_verdict(i, f, a, threshold))
                .collect();
            image_verdict(request_id, faces, found.skipped, mode, model, &engine)
        }
    };
    verdict.timings_ms.decode_image = decode_ms;
    verdict.timings_ms.detect_faces = found.ms;
    Ok(Some(verdict))
}

/// Splits a screening that also asks questions into the screening alone and
/// the questions as a follow-up (its history: the caller's earlier turns, to
/// be put after the verdict's). Anything else stays one job.
fn split_questions(mut tasks: Tasks) -> (Tasks, Option<Tasks>) {
    if !tasks.screen || tasks.questions.is_empty() {
        return (tasks, None);
    }
    let questions = Tasks {
        screen: false,
        explain: Explain::Never,
        history: std::mem::take(&mut tasks.history),
        questions: std::mem::take(&mut tasks.questions),
        keep_detection_logits: false,
        image_key: tasks.image_key.clone(),
        // The stream carries the last question's answer.
        stream: tasks.stream.take(),
    };
    (tasks, Some(questions))
}

/// The follow-up job's answers and time, added to the screening's verdict.
fn add_answers(verdict: &mut Verdict, answered: Analysis, decode_ms: f64) {
    verdict.answers = clean_answers(answered.answers);
    let t = &mut verdict.timings_ms;
    t.decode_image += decode_ms;
    t.encode_image += answered.timings.encode_image;
    t.prefill += answered.timings.prefill;
    t.generate += answered.timings.generate;
}

#[cfg(test)]
mod faces_tests;
#[cfg(test)]
pub(crate) mod tests;
