//! From image bytes to a `Verdict`: intake, the model stage, and assembly.
//! Shared by the CLI and the worker.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use uuid::Uuid;

use crate::domain::verdict::Labelled;
use crate::domain::{parse_artifacts, Answer, Timings, Verdict};
use crate::engine::{Analysis, AnalysisRequest, Backend, EngineError, Tasks};
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

/// Screens one image and assembles its verdict. The image is decoded within
/// `intake`'s budget, and its share is held until the engine has made its
/// own input from it.
pub async fn analyze_bytes<B: Backend>(
    backend: &B,
    request_id: Uuid,
    bytes: Arc<Vec<u8>>,
    tasks: Tasks,
    intake: &Intake,
    analysis: &AnalysisSettings,
) -> Result<Verdict, AnalyzeError> {
    let started = Instant::now();
    let (image, decode_ms) = intake.decode(bytes).await;
    let image = image?;
    let result = backend.analyze(AnalysisRequest { image, tasks }).await?;
    let mut verdict = assemble_verdict(request_id, result, analysis.threshold);
    verdict.timings_ms.decode_image = decode_ms;
    verdict.timings_ms.total = started.elapsed().as_secs_f64() * 1000.0;
    Ok(verdict)
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
    let answers: Vec<Answer> = a
        .answers
        .into_iter()
        .map(|x| Answer {
            question: x.question,
            answer: without_nul(&x.answer),
        })
        .collect();
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
mod tests {
    use super::*;
    use crate::domain::{ForgeryType, Label, ModelIdentity, TypeScores};
    use crate::engine::EngineTimings;

    fn analysis(p_fake: f32, explanation: Option<&str>) -> Analysis {
        Analysis {
            p_fake: Some(p_fake),
            type_scores: Some(TypeScores::from_array([0.1, 0.6, 0.2, 0.1])),
            explanation: explanation.map(str::to_string),
            answers: vec![],
            detection_logits: None,
            generated_tokens: 0,
            reused_tokens: 0,
            model: ModelIdentity {
                base_sha256: "b".into(),
                mmproj_sha256: "m".into(),
                adapter: None,
            },
            timings: EngineTimings::default(),
        }
    }

    #[test]
    fn fake_verdict_names_the_best_type_and_regions() {
        let v = assemble_verdict(Uuid::nil(), analysis(0.9, Some("1. **Eye**: blurred")), 0.5);
        assert_eq!(v.label, Label::Fake);
        assert_eq!(v.forgery_type, Some(ForgeryType::FaceReenactment));
        assert_eq!(v.artifacts[0].region, "Eye");
        assert_eq!(v.explanation.as_deref(), Some("1. **Eye**: blurred"));
    }

    #[test]
    fn generated_nul_characters_do_not_reach_the_verdict() {
        let v = assemble_verdict(Uuid::nil(), analysis(0.9, Some("1. **Eye**: a\0b")), 0.5);
        assert_eq!(v.explanation.as_deref(), Some("1. **Eye**: a\u{FFFD}b"));
        assert_eq!(v.artifacts[0].text, "a\u{FFFD}b");
    }

    #[test]
    fn real_verdict_has_no_type() {
        let v = assemble_verdict(Uuid::nil(), analysis(0.2, None), 0.5);
        assert_eq!(v.label, Label::Real);
        assert_eq!(v.forgery_type, None);
        assert!(v.artifacts.is_empty());
    }
}
