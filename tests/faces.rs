//! Face detection on real pictures: the public-domain astronaut portrait
//! crops in samples/, alone and pasted onto a larger canvas; and the face
//! stage in front of the real engine (llama.cpp on the tiny model).

mod common;

use dfa::faces::{crop_square, FaceBox, FaceDetector};
use dfa::settings::Settings;
use image::{imageops, RgbImage};

fn detector() -> FaceDetector {
    FaceDetector::new(Settings::embedded().expect("settings").faces).expect("model loads")
}

fn sample(name: &str) -> RgbImage {
    let path = format!("{}/samples/{name}", env!("CARGO_MANIFEST_DIR"));
    image::open(&path).expect("sample decodes").to_rgb8()
}

/// The face in samples/astronaut-face.jpg (224×248), measured once with
/// this detector and checked by eye: the eyes-to-chin square.
const ASTRONAUT: FaceBox = FaceBox {
    x: 35,
    y: 65,
    w: 115,
    h: 115,
    score: 0.0,
};

/// `ASTRONAUT` scaled by `k` and moved to `(dx, dy)`.
fn placed(k: f32, dx: u32, dy: u32) -> FaceBox {
    let s = |v: u32| (v as f32 * k).round() as u32;
    FaceBox {
        x: dx + s(ASTRONAUT.x),
        y: dy + s(ASTRONAUT.y),
        w: s(ASTRONAUT.w),
        h: s(ASTRONAUT.h),
        score: 0.0,
    }
}

fn detect(img: &RgbImage) -> dfa::faces::Detection {
    detector()
        .detect(img.width(), img.height(), img.as_raw())
        .expect("detection runs")
}

#[test]
fn the_astronaut_crop_holds_one_face_where_it_was_measured() {
    let img = sample("astronaut-face.jpg");
    let found = detect(&img);
    assert_eq!(found.faces.len(), 1, "{found:?}");
    let iou = found.faces[0].iou(&ASTRONAUT);
    assert!(iou >= 0.5, "IoU {iou} with the measured box: {found:?}");
    assert!(found.faces[0].score >= 6.0);
}

#[test]
fn two_faces_pasted_on_a_big_canvas_are_both_found_near_where_they_went() {
    let face = sample("astronaut-face.jpg");
    let mut canvas = RgbImage::from_pixel(2000, 1200, image::Rgb([200, 205, 210]));
    imageops::overlay(&mut canvas, &face, 150, 300);
    let small = imageops::resize(
        &face,
        face.width() * 3 / 4,
        face.height() * 3 / 4,
        imageops::FilterType::CatmullRom,
    );
    imageops::overlay(&mut canvas, &small, 1400, 500);
    let found = detect(&canvas);
    assert_eq!(found.faces.len(), 2, "{found:?}");
    // Largest first: the full-size paste, then the three-quarter one.
    for (got, want) in found
        .faces
        .iter()
        .zip([placed(1.0, 150, 300), placed(0.75, 1400, 500)])
    {
        let iou = got.iou(&want);
        assert!(iou >= 0.5, "IoU {iou}: found {got:?}, pasted {want:?}");
    }
}

#[test]
fn a_blank_page_or_a_page_of_text_has_no_face() {
    let page = RgbImage::from_pixel(1200, 1600, image::Rgb([250, 250, 250]));
    assert!(detect(&page).faces.is_empty());
    let text = common::text_page();
    assert!(detect(&text).faces.is_empty());
}

#[test]
fn crops_are_square_and_sized_for_the_vision_tower() {
    let img = sample("astronaut-face.jpg");
    let b = FaceBox {
        x: 10,
        y: 10,
        w: 50,
        h: 60,
        score: 10.0,
    };
    assert_eq!(crop_square(&img, &b, 1.3, 336).dimensions(), (336, 336));
}

mod with_the_engine {
    use std::sync::Arc;

    use dfa::domain::{FaceMode, VerdictStatus};
    use dfa::engine::analyze::{analyze_bytes, Stages};
    use dfa::engine::{AnalysisRequest, Backend, Engine, Explain, Tasks};
    use dfa::faces::FaceStage;
    use dfa::intake::Intake;
    use uuid::Uuid;

    use super::common;

    fn tasks() -> Tasks {
        Tasks {
            explain: Explain::Always,
            ..Tasks::screening(0.5)
        }
    }

    async fn analyse(
        engine: &Engine,
        mode: FaceMode,
        img: &image::RgbImage,
    ) -> dfa::domain::Verdict {
        let mut s = common::settings();
        s.faces.mode = mode;
        let intake = Intake::new(&s.image);
        let faces = FaceStage::new(&s.faces).expect("detector");
        let stages = Stages {
            intake: &intake,
            analysis: &s.analysis,
            faces: &faces,
        };
        let bytes = Arc::new(common::encode(img, image::ImageFormat::Png));
        analyze_bytes(engine, Uuid::new_v4(), bytes, tasks(), stages)
            .await
            .expect("analysed")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_face_gets_its_verdict_and_the_image_the_most_suspicious() {
        let engine = common::engine(None).await;
        let v = analyse(&engine, FaceMode::Detect, &common::two_faces()).await;
        assert_eq!(v.status, VerdictStatus::Analysed);
        assert_eq!(v.face_count, Some(2), "{v:?}");
        let max = v.faces.iter().map(|f| f.p_fake).fold(f32::MIN, f32::max);
        assert_eq!(v.p_fake, Some(max));
        let primary = v.primary().expect("a primary face");
        assert_eq!(primary.p_fake, max);
        assert_eq!(v.label, Some(primary.label));
        assert_eq!(v.explanation, primary.explanation);
        for f in &v.faces {
            assert!(f.explanation.is_some(), "explained always: {f:?}");
            let sum: f32 = f.type_scores.as_array().iter().sum();
            assert!((sum - 1.0).abs() < 1e-3, "type scores sum to 1: {f:?}");
        }
        assert!(v.timings_ms.detect_faces > 0.0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn with_faces_off_the_verdict_is_the_whole_image_analysis_bit_for_bit() {
        let engine = common::engine(None).await;
        let img = common::two_faces();
        let v = analyse(&engine, FaceMode::Off, &img).await;
        let decoded = dfa::intake::decode_image(
            &common::encode(&img, image::ImageFormat::Png),
            &common::settings().image,
        )
        .expect("decodes");
        let direct = engine
            .analyze(AnalysisRequest {
                image: decoded,
                tasks: tasks(),
            })
            .await
            .expect("analysed");
        assert_eq!(v.p_fake.map(f32::to_bits), direct.p_fake.map(f32::to_bits));
        let bits = |t: Option<dfa::domain::TypeScores>| t.map(|t| t.as_array().map(f32::to_bits));
        assert_eq!(bits(v.type_scores), bits(direct.type_scores));
        assert_eq!(v.explanation, direct.explanation);
        assert_eq!((v.face_mode, v.face_count), (FaceMode::Off, None));
        assert!(v.faces.is_empty());
        let json = serde_json::to_value(&v).expect("json");
        assert!(json["faces"].as_array().is_some_and(Vec::is_empty));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_page_of_text_is_no_face() {
        let engine = common::engine(None).await;
        let page = common::text_page();
        let v = analyse(&engine, FaceMode::Detect, &page).await;
        assert_eq!(v.status, VerdictStatus::NoFace);
        assert_eq!((v.p_fake, v.label), (None, None));
    }
}
