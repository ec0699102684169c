//! Face detection on real pictures: the public-domain astronaut portrait
//! crops in samples/, alone and pasted onto a larger canvas.

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
fn a_blank_page_has_no_face() {
    let page = RgbImage::from_pixel(1200, 1600, image::Rgb([250, 250, 250]));
    assert!(detect(&page).faces.is_empty());
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
