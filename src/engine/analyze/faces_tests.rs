//! The face stage in the analysis: a job per face, the image's verdict its
//! most suspicious face's, `no_face`, the whole-image fallback, and reuse.
//! The backend here scores a crop by its darkness, so that two pasted
//! copies of one face, one darkened, get different p_fake.

use image::{imageops, RgbImage};

use super::tests::stages_in;
use super::*;
use crate::domain::{FaceMode, Label, ModelIdentity, TypeScores, VerdictStatus};
use crate::engine::EngineTimings;

/// p_fake = 1 - mean brightness of what it is shown; counts its jobs.
#[derive(Default)]
struct Darkness(std::sync::Mutex<Vec<(u32, u32, f32)>>);

fn identity() -> ModelIdentity {
    ModelIdentity {
        base_sha256: "b".into(),
        mmproj_sha256: "m".into(),
        adapter: None,
    }
}

impl Backend for Darkness {
    async fn analyze(&self, request: AnalysisRequest) -> Result<Analysis, EngineError> {
        let img = &request.image;
        let mean = img.rgb().iter().map(|&b| f64::from(b)).sum::<f64>() / img.rgb().len() as f64;
        let p_fake = (1.0 - mean / 255.0) as f32;
        let seen = (img.width(), img.height(), p_fake);
        self.0.lock().unwrap().push(seen);
        Ok(Analysis {
            p_fake: request.tasks.screen.then_some(p_fake),
            type_scores: request
                .tasks
                .screen
                .then(|| TypeScores::from_array([0.7, 0.1, 0.1, 0.1])),
            explanation: None,
            answers: request
                .tasks
                .questions
                .iter()
                .map(|q| crate::domain::Answer {
                    question: q.clone(),
                    answer: format!("{p_fake}"),
                })
                .collect(),
            detection_logits: None,
            generated_tokens: 0,
            reused_tokens: 0,
            model: identity(),
            timings: EngineTimings::default(),
        })
    }

    fn model(&self) -> ModelIdentity {
        identity()
    }

    async fn set_adapter(
        &self,
        _: Option<crate::engine::AdapterSpec>,
    ) -> Result<ModelIdentity, EngineError> {
        unreachable!("no adapter in these tests")
    }
}

fn sample(name: &str) -> RgbImage {
    let path = format!("{}/samples/{name}", env!("CARGO_MANIFEST_DIR"));
    image::open(path).unwrap().to_rgb8()
}

fn png_of(img: &RgbImage) -> Arc<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    Arc::new(out.into_inner())
}

/// Two copies of the astronaut's face on a grey 2000×1200 canvas; the
/// right one darkened (more suspicious to `Darkness`).
fn two_faces() -> RgbImage {
    let face = sample("astronaut-face.jpg");
    let dark = imageops::colorops::brighten(&face, -60);
    let mut canvas = RgbImage::from_pixel(2000, 1200, image::Rgb([200, 205, 210]));
    imageops::overlay(&mut canvas, &face, 150, 300);
    imageops::overlay(&mut canvas, &dark, 1400, 500);
    canvas
}

async fn analyse(backend: &Darkness, mode: FaceMode, img: &RgbImage) -> Verdict {
    let (settings, intake, faces) = stages_in(mode);
    let stages = Stages {
        intake: &intake,
        analysis: &settings.analysis,
        faces: &faces,
    };
    let tasks = Tasks::screening(settings.analysis.explain_threshold);
    analyze_bytes(backend, Uuid::nil(), png_of(img), tasks, stages)
        .await
        .unwrap()
}

#[tokio::test]
async fn each_face_is_its_own_job_and_the_darker_one_speaks_for_the_image() {
    let backend = Darkness::default();
    let v = analyse(&backend, FaceMode::Detect, &two_faces()).await;
    let jobs = backend.0.lock().unwrap().clone();
    assert_eq!(jobs.len(), 2, "one job per face: {jobs:?}");
    assert!(jobs.iter().all(|(w, h, _)| (*w, *h) == (336, 336)));
    assert_eq!(v.status, VerdictStatus::Analysed);
    assert_eq!((v.face_mode, v.face_count), (FaceMode::Detect, Some(2)));
    let right = v
        .faces
        .iter()
        .find(|f| f.bbox.x > 1000)
        .expect("right face");
    let left = v.faces.iter().find(|f| f.bbox.x < 1000).expect("left face");
    assert!(right.p_fake > left.p_fake, "{right:?} vs {left:?}");
    assert_eq!(v.primary_face, Some(right.index));
    assert_eq!(v.p_fake, Some(right.p_fake));
    assert_eq!(v.label, Some(right.label));
    // Each crop holds its face with the margin around it.
    for f in &v.faces {
        assert!(f.crop.x <= f.bbox.x && f.crop.x + f.crop.side >= f.bbox.x + f.bbox.w);
        assert!(f.crop.side > f.bbox.w.max(f.bbox.h));
    }
}

#[tokio::test]
async fn an_image_without_a_face_is_not_screened_unless_asked_whole() {
    let blank = RgbImage::from_pixel(640, 480, image::Rgb([250, 250, 250]));
    let backend = Darkness::default();
    let v = analyse(&backend, FaceMode::Detect, &blank).await;
    assert!(backend.0.lock().unwrap().is_empty(), "no engine job");
    assert_eq!(v.status, VerdictStatus::NoFace);
    assert_eq!((v.label, v.p_fake, v.type_scores), (None, None, None));
    assert_eq!(v.face_count, Some(0));
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["status"], "no_face");
    assert!(json["p_fake"].is_null());

    let v = analyse(&backend, FaceMode::WholeImage, &blank).await;
    let jobs = backend.0.lock().unwrap().clone();
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0].0, jobs[0].1), (640, 480), "the whole image");
    assert_eq!(v.status, VerdictStatus::Analysed);
    assert_eq!((v.face_mode, v.face_count), (FaceMode::WholeImage, Some(0)));
    assert_eq!(v.label, Some(Label::Real));
}

#[tokio::test]
async fn with_faces_off_the_whole_image_is_analysed_as_before() {
    let img = two_faces();
    let backend = Darkness::default();
    let v = analyse(&backend, FaceMode::Off, &img).await;
    let jobs = backend.0.lock().unwrap().clone();
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0].0, jobs[0].1), (2000, 1200));
    assert_eq!(v.p_fake, Some(jobs[0].2));
    assert_eq!((v.face_mode, v.face_count), (FaceMode::Off, None));
    assert!(v.faces.is_empty());
}

#[tokio::test]
async fn a_reused_analysis_runs_no_screening_and_says_where_it_came_from() {
    let img = two_faces();
    let backend = Darkness::default();
    let first = analyse(&backend, FaceMode::Detect, &img).await;
    let (settings, intake, faces) = stages_in(FaceMode::Detect);
    let stages = Stages {
        intake: &intake,
        analysis: &settings.analysis,
        faces: &faces,
    };
    let mut prior = first.clone();
    prior.request_id = Uuid::new_v4();
    let asked = Tasks::requested(false, 0.5, vec!["Why?".into()]);
    let again = analyze_reusing(&backend, Uuid::nil(), png_of(&img), asked, stages, &prior)
        .await
        .unwrap();
    let jobs = backend.0.lock().unwrap().clone();
    assert_eq!(jobs.len(), 3, "two faces screened once, then the question");
    assert_eq!(
        jobs[2].2,
        first.p_fake.unwrap(),
        "asked of the darker face's crop"
    );
    assert_eq!(again.reused_from, Some(prior.request_id));
    assert_eq!(again.faces, first.faces);
    assert_eq!(again.answers.len(), 1);
}

#[tokio::test]
async fn faces_beyond_the_cap_never_reach_the_engine() {
    // Twelve faces in a grid; the cap is 8 (faces.max_per_image).
    let face = sample("astronaut-face.jpg");
    let mut canvas = RgbImage::from_pixel(1600, 1000, image::Rgb([200, 205, 210]));
    for i in 0..12u32 {
        imageops::overlay(
            &mut canvas,
            &face,
            i64::from(i % 6 * 260 + 10),
            i64::from(i / 6 * 480 + 20),
        );
    }
    let backend = Darkness::default();
    let v = analyse(&backend, FaceMode::Detect, &canvas).await;
    let cap = crate::settings::Settings::embedded()
        .unwrap()
        .faces
        .max_per_image;
    assert_eq!(cap, 8);
    assert_eq!(
        backend.0.lock().unwrap().len(),
        cap,
        "{:?}",
        v.faces_skipped
    );
    assert_eq!(v.face_count, Some(cap as u32));
    assert_eq!(v.faces.len() + v.faces_skipped.over_cap as usize, 12);
}

#[tokio::test]
async fn a_reused_analysis_is_labelled_at_todays_threshold() {
    let backend = Darkness::default();
    let first = analyse(&backend, FaceMode::Detect, &two_faces()).await;
    let top = first.p_fake.unwrap();
    // A threshold just above the top score: every face is real now.
    let again = reused_verdict(Uuid::new_v4(), &first, top + 0.01);
    assert_eq!(again.label, Some(Label::Real));
    assert_eq!(again.forgery_type, None);
    assert!(again.faces.iter().all(|f| f.label == Label::Real));
    assert_eq!(again.p_fake, first.p_fake, "scores are the model's");
    let at_top = reused_verdict(Uuid::new_v4(), &first, top);
    assert_eq!(at_top.label, Some(Label::Fake));
    assert!(at_top.forgery_type.is_some());
}
