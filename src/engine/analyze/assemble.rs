//! Pure assembly of verdicts from the engine's analyses: the whole image's,
//! a face's, an image's from its faces (the most suspicious one speaks for
//! it), an image without a face, and a reused analysis.

use chrono::Utc;
use uuid::Uuid;

use crate::domain::verdict::Labelled;
use crate::domain::{
    most_suspicious, parse_artifacts, Answer, FaceMode, FaceVerdict, FacesSkipped, ModelIdentity,
    Timings, Verdict, VerdictStatus,
};
use crate::engine::{Analysis, EngineTimings};
use crate::faces::FoundFace;

pub(super) fn clean_answers(answers: Vec<Answer>) -> Vec<Answer> {
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

fn timings(t: &EngineTimings) -> Timings {
    Timings {
        decode_image: 0.0,
        detect_faces: 0.0,
        encode_image: t.encode_image,
        prefill: t.prefill,
        generate: t.generate,
        total: t.total,
    }
}

/// Turns the engine's scores for a whole image into a verdict. A request
/// that did not screen (a follow-up) has no scores; it is reported as real
/// with p_fake 0 only in the fields that require a value, so callers screen
/// when they need a label.
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
        status: VerdictStatus::Analysed,
        label: Some(l.label),
        p_fake: Some(l.p_fake),
        forgery_type: l.forgery_type,
        type_scores: Some(l.type_scores),
        artifacts,
        explanation,
        answers,
        face_mode: FaceMode::Off,
        face_count: None,
        primary_face: None,
        faces: Vec::new(),
        faces_skipped: FacesSkipped::default(),
        reused_from: None,
        model: a.model,
        timings_ms: timings(&a.timings),
        created_at: Utc::now(),
    }
}

/// One face's verdict from its crop's analysis.
pub fn face_verdict(index: u32, found: &FoundFace, a: Analysis, threshold: f32) -> FaceVerdict {
    let v = assemble_verdict(Uuid::nil(), a, threshold);
    let l = Labelled::from_scores(v.p_fake, v.type_scores, threshold);
    FaceVerdict {
        index,
        bbox: found.bbox(),
        detector_score: found.face.score,
        crop: found.crop,
        label: l.label,
        p_fake: l.p_fake,
        forgery_type: l.forgery_type,
        type_scores: l.type_scores,
        artifacts: v.artifacts,
        explanation: v.explanation,
    }
}

/// An image's verdict from its faces' (at least one): the most suspicious
/// face's label, scores and artifacts; the engine time of every face.
pub fn image_verdict(
    request_id: Uuid,
    faces: Vec<FaceVerdict>,
    skipped: FacesSkipped,
    mode: FaceMode,
    model: ModelIdentity,
    engine: &[EngineTimings],
) -> Verdict {
    let primary = most_suspicious(&faces).cloned();
    let mut t = Timings::default();
    for e in engine {
        t.encode_image += e.encode_image;
        t.prefill += e.prefill;
        t.generate += e.generate;
        t.total = t.total.max(e.total);
    }
    Verdict {
        request_id,
        status: VerdictStatus::Analysed,
        label: primary.as_ref().map(|f| f.label),
        p_fake: primary.as_ref().map(|f| f.p_fake),
        forgery_type: primary.as_ref().and_then(|f| f.forgery_type),
        type_scores: primary.as_ref().map(|f| f.type_scores),
        artifacts: primary
            .as_ref()
            .map(|f| f.artifacts.clone())
            .unwrap_or_default(),
        explanation: primary.as_ref().and_then(|f| f.explanation.clone()),
        answers: Vec::new(),
        face_mode: mode,
        face_count: Some(faces.len() as u32),
        primary_face: primary.as_ref().map(|f| f.index),
        faces,
        faces_skipped: skipped,
        reused_from: None,
        model,
        timings_ms: t,
        created_at: Utc::now(),
    }
}

/// An image in which detection found no face: nothing screened.
pub fn no_face_verdict(request_id: Uuid, skipped: FacesSkipped, model: ModelIdentity) -> Verdict {
    Verdict {
        request_id,
        status: VerdictStatus::NoFace,
        label: None,
        p_fake: None,
        forgery_type: None,
        type_scores: None,
        artifacts: Vec::new(),
        explanation: None,
        answers: Vec::new(),
        face_mode: FaceMode::Detect,
        face_count: Some(0),
        primary_face: None,
        faces: Vec::new(),
        faces_skipped: skipped,
        reused_from: None,
        model,
        timings_ms: Timings::default(),
        created_at: Utc::now(),
    }
}

/// A stored analysis of the same bytes by the same model, reused for a new
/// request: its scores, faces and artifacts, labelled again at today's
/// `threshold` (scores are the model's, labels are a setting's); none of its
/// answers or timings; and where it came from (the first verdict that ran
/// the model).
pub fn reused_verdict(request_id: Uuid, prior: &Verdict, threshold: f32) -> Verdict {
    let faces: Vec<FaceVerdict> = prior
        .faces
        .iter()
        .map(|f| {
            let l = Labelled::from_scores(Some(f.p_fake), Some(f.type_scores), threshold);
            FaceVerdict {
                label: l.label,
                forgery_type: l.forgery_type,
                ..f.clone()
            }
        })
        .collect();
    let image = prior
        .p_fake
        .map(|p| Labelled::from_scores(Some(p), prior.type_scores, threshold));
    Verdict {
        request_id,
        label: image.map(|l| l.label),
        forgery_type: image.and_then(|l| l.forgery_type),
        faces,
        answers: Vec::new(),
        reused_from: prior.reused_from.or(Some(prior.request_id)),
        timings_ms: Timings::default(),
        created_at: Utc::now(),
        ..prior.clone()
    }
}
