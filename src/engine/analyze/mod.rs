//! From image bytes to a `Verdict`: intake, the model stage, and assembly.
//! Shared by the CLI and the worker.
//!
//! A request's own questions are asked after its verdict, as reviewers'
//! follow-ups are: the image is screened first, then the questions see the
//! verdict's turns (`domain::dialogue`) as their history, so a question
//! sent with the request and the same question asked over HTTP read the
//! same conversation.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use uuid::Uuid;

use crate::domain::dialogue::{history, Screened};
use crate::domain::verdict::Labelled;
use crate::domain::{parse_artifacts, Answer, Timings, Verdict};
use crate::engine::{Analysis, AnalysisRequest, Backend, EngineError, Explain, Tasks};
use crate::intake::{ImageError, Intake};
use crate::settings::AnalysisSettings;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AnalyzeError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl AnalyzeError {
    /// Stable machine-readable kind for outputs and dead-letter headers.
    pub fn kind(&self) -> &'static str {
        match self {
            AnalyzeError::Image(e) => e.kind(),
            AnalyzeError::Engine(e) => e.kind(),
        }
    }
}

/// Screens one image and assembles its verdict; the tasks' questions, if
/// any, are then asked after the verdict's turns (a second engine job on the
/// same `image_key`, whose cached state it can reuse). The image is decoded
/// within `intake`'s budget, and its share is held until the engine has made
/// its own input from it.
pub async fn analyze_bytes<B: Backend>(
    backend: &B,
    request_id: Uuid,
    bytes: Arc<Vec<u8>>,
    tasks: Tasks,
    intake: &Intake,
    analysis: &AnalysisSettings,
) -> Result<Verdict, AnalyzeError> {
    let started = Instant::now();
    let (screening, questions) = split_questions(tasks);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (image, decode_ms) = intake.decode(bytes.clone()).await;
        let image = image?;
        let result = backend
            .analyze(AnalysisRequest {
                image,
                tasks: screening.clone(),
            })
            .await?;
        let mut verdict = assemble_verdict(request_id, result, analysis.threshold);
        verdict.timings_ms.decode_image = decode_ms;
        if let Some(questions) = &questions {
            let screened = Screened {
                label: verdict.label,
                forgery_type: verdict.forgery_type,
                explanation: verdict.explanation.as_deref(),
            };
            let tasks = Tasks {
                history: history(backend.prompts(), &screened, &questions.history),
                ..questions.clone()
            };
            // Decoded again rather than kept: a copy held while the screening
            // waits in the engine's queue would sit outside the decode budget.
            let (image, decode_ms) = intake.decode(bytes.clone()).await;
            let answered = backend
                .analyze(AnalysisRequest {
                    image: image?,
                    tasks,
                })
                .await?;
            // An adapter swap landed between the two jobs: the answers came
            // from another model than the verdict, which records one. Both
            // are made again (swaps are rare), unless an answer was already
            // streamed to someone.
            if answered.model != verdict.model
                && questions.stream.is_none()
                && attempt < SAME_MODEL_ATTEMPTS
            {
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

fn clean_answers(answers: Vec<Answer>) -> Vec<Answer> {
    answers
        .into_iter()
        .map(|x| Answer {
            question: x.question,
            answer: without_nul(&x.answer),
        })
        .collect()
}

fn without_nul(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

/// Turns the engine's scores into a verdict. A request that did not screen
/// (a follow-up) has no scores; it is reported as real with p_fake 0 only in
/// the fields that require a value, so callers screen when they need a label.
pub fn assemble_verdict(request_id: Uuid, a: Analysis, threshold: f32) -> Verdict {
    let l = Labelled::from_scores(a.p_fake, a.type_scores, threshold);
    // Generated text can hold a NUL (a byte token), which no store or JSON
    // consumer wants: it becomes U+FFFD, as any invalid byte would.
    let explanation = a.explanation.map(|e| without_nul(&e));
    let answers = clean_answers(a.answers);
    let artifacts = explanation
        .as_deref()
        .map(parse_artifacts)
        .unwrap_or_default();
    Verdict {
        request_id,
        label: l.label,
        p_fake: l.p_fake,
        forgery_type: l.forgery_type,
        type_scores: l.type_scores,
        artifacts,
        explanation,
        answers,
        model: a.model,
        timings_ms: Timings {
            decode_image: 0.0,
            encode_image: a.timings.encode_image,
            prefill: a.timings.prefill,
            generate: a.timings.generate,
            total: a.timings.total,
        },
        created_at: Utc::now(),
    }
}

#[cfg(test)]
mod tests;
