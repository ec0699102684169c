//! Verdict assembly, and a request's questions asked after its verdict.

use super::*;
use crate::domain::{Answer, FaceMode, ForgeryType, Label, ModelIdentity, TypeScores};
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
    assert_eq!(v.label, Some(Label::Fake));
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

/// Records the tasks it is given; screens every image as a face
/// reenactment and answers each question by naming it.
#[derive(Default)]
struct Recording(std::sync::Mutex<Vec<Tasks>>);

impl Backend for Recording {
    async fn analyze(&self, request: AnalysisRequest) -> Result<Analysis, EngineError> {
        let tasks = request.tasks;
        self.0.lock().unwrap().push(tasks.clone());
        let mut a = analysis(0.9, Some("1. **Eye**: blurred"));
        if !tasks.screen {
            (a.p_fake, a.type_scores, a.explanation) = (None, None, None);
        }
        a.answers = tasks
            .questions
            .iter()
            .map(|q| Answer {
                question: q.clone(),
                answer: format!("about {q}\0"),
            })
            .collect();
        Ok(a)
    }

    fn model(&self) -> ModelIdentity {
        analysis(0.0, None).model
    }

    async fn set_adapter(
        &self,
        _: Option<crate::engine::AdapterSpec>,
    ) -> Result<ModelIdentity, EngineError> {
        unreachable!("no adapter in these tests")
    }
}

fn png() -> Arc<Vec<u8>> {
    let img = image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([x as u8 * 8, y as u8, 7]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    Arc::new(out.into_inner())
}

/// The stages with the face stage in `mode`.
pub(super) fn stages_in(mode: FaceMode) -> (crate::settings::Settings, Intake, FaceStage) {
    let mut settings = crate::settings::Settings::embedded().unwrap();
    settings.faces.mode = mode;
    let intake = Intake::new(&settings.image);
    let faces = FaceStage::new(&settings.faces).unwrap();
    (settings, intake, faces)
}

async fn run(backend: &Recording, tasks: Tasks) -> Verdict {
    // The picture is no face: these tests are about the whole image.
    let (settings, intake, faces) = stages_in(FaceMode::Off);
    let stages = Stages {
        intake: &intake,
        analysis: &settings.analysis,
        faces: &faces,
    };
    analyze_bytes(backend, Uuid::nil(), png(), tasks, stages)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_requests_questions_see_its_verdict_turns() {
    let backend = Recording::default();
    let questions = vec!["Why?".to_string(), "Where?".to_string()];
    let mut tasks = Tasks::requested(false, 0.5, questions.clone());
    tasks.image_key = Some("abc".into());
    let v = run(&backend, tasks).await;

    let seen = backend.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "screened, then asked");
    assert!(seen[0].screen && seen[0].questions.is_empty());
    assert_eq!(seen[0].image_key.as_deref(), Some("abc"));
    let asked = &seen[1];
    assert!(!asked.screen);
    assert_eq!(asked.explain, Explain::Never);
    assert_eq!(asked.questions, questions);
    assert_eq!(asked.image_key.as_deref(), Some("abc"));
    let expected = crate::domain::dialogue::verdict_turns(
        &crate::domain::prompts::Prompts::embedded(),
        &Screened {
            label: Label::Fake,
            forgery_type: Some(ForgeryType::FaceReenactment),
            explanation: Some("1. **Eye**: blurred"),
        },
    );
    assert_eq!(expected.len(), 3, "detection, classification, artifacts");
    assert_eq!(asked.history, expected);
    assert_eq!(asked.history[0].answer, "Yes.");

    assert_eq!(v.label, Some(Label::Fake));
    assert_eq!(v.explanation.as_deref(), Some("1. **Eye**: blurred"));
    let pairs: Vec<(&str, &str)> = v
        .answers
        .iter()
        .map(|a| (a.question.as_str(), a.answer.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("Why?", "about Why?\u{FFFD}"),
            ("Where?", "about Where?\u{FFFD}")
        ]
    );
}

#[tokio::test]
async fn a_screening_without_questions_is_one_job() {
    let backend = Recording::default();
    let v = run(&backend, Tasks::requested(true, 0.5, vec![])).await;
    assert_eq!(backend.0.lock().unwrap().len(), 1);
    assert!(v.answers.is_empty());
    let follow_up = Tasks::follow_up(vec![], "Why?".into());
    let v = run(&backend, follow_up).await;
    let seen = backend.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "a follow-up is asked as it is");
    assert!(seen[1].history.is_empty());
    assert_eq!(v.answers.len(), 1);
}

#[test]
fn real_verdict_has_no_type() {
    let v = assemble_verdict(Uuid::nil(), analysis(0.2, None), 0.5);
    assert_eq!(v.label, Some(Label::Real));
    assert_eq!(v.forgery_type, None);
    assert!(v.artifacts.is_empty());
}

/// Screens and answers as `Recording`, but its adapter changes after the
/// first job, as a hot swap between a request's two jobs would.
#[derive(Default)]
struct SwappedAfterFirst(Recording);

impl Backend for SwappedAfterFirst {
    async fn analyze(&self, request: AnalysisRequest) -> Result<Analysis, EngineError> {
        let first = self.0 .0.lock().unwrap().is_empty();
        let mut a = self.0.analyze(request).await?;
        a.model.adapter = Some(crate::domain::AdapterIdentity {
            id: if first { "old" } else { "new" }.into(),
            sha256: "s".into(),
            scale: 1.0,
        });
        Ok(a)
    }

    fn model(&self) -> ModelIdentity {
        self.0.model()
    }

    async fn set_adapter(
        &self,
        _: Option<crate::engine::AdapterSpec>,
    ) -> Result<ModelIdentity, EngineError> {
        unreachable!("no adapter in these tests")
    }
}

#[tokio::test]
async fn a_swap_between_screening_and_questions_makes_both_again() {
    let backend = SwappedAfterFirst::default();
    let (settings, intake, faces) = stages_in(FaceMode::Off);
    let stages = Stages {
        intake: &intake,
        analysis: &settings.analysis,
        faces: &faces,
    };
    let tasks = Tasks::requested(false, 0.5, vec!["Why?".to_string()]);
    let v = analyze_bytes(&backend, Uuid::nil(), png(), tasks, stages)
        .await
        .unwrap();
    let seen = backend.0 .0.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        4,
        "screened (old), asked (new), then both again"
    );
    assert!(seen[2].screen && !seen[3].screen);
    let adapter = v.model.adapter.map(|a| a.id);
    assert_eq!(
        adapter.as_deref(),
        Some("new"),
        "one adapter made the whole verdict"
    );
    assert_eq!(v.answers.len(), 1);
}
