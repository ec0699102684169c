use image::{Rgb, RgbImage};
use uuid::Uuid;

use super::{annotate, caption_of, tag_text, Style, CAPTION, FAKE, INK, REAL};
use crate::domain::{
    BBox, CropSquare, FaceMode, FaceVerdict, FacesSkipped, Label, ModelIdentity, TypeScores,
    Verdict,
};
use crate::engine::analyze::{image_verdict, no_face_verdict};

const GREY: Rgb<u8> = Rgb([128, 128, 128]);

fn model() -> ModelIdentity {
    ModelIdentity {
        base_sha256: "b".repeat(64),
        mmproj_sha256: "m".repeat(64),
        adapter: None,
    }
}

fn face(index: u32, bbox: BBox, p_fake: f32) -> FaceVerdict {
    FaceVerdict {
        index,
        bbox,
        detector_score: 18.0,
        crop: CropSquare {
            x: bbox.x,
            y: bbox.y,
            side: bbox.w,
        },
        label: Label::from_score(p_fake, 0.5),
        p_fake,
        forgery_type: None,
        type_scores: TypeScores::from_array([0.25; 4]),
        artifacts: vec![],
        explanation: None,
    }
}

fn with_faces(faces: Vec<FaceVerdict>, mode: FaceMode) -> Verdict {
    image_verdict(
        Uuid::nil(),
        faces,
        FacesSkipped::default(),
        mode,
        model(),
        &[],
    )
}

fn bbox(x: u32, y: u32, w: u32, h: u32) -> BBox {
    BBox { x, y, w, h }
}

fn grey(w: u32, h: u32) -> RgbImage {
    RgbImage::from_pixel(w, h, GREY)
}

/// Pixels of `image` inside the rectangle that have `colour`.
fn count(image: &RgbImage, (x, y, w, h): (u32, u32, u32, u32), colour: Rgb<u8>) -> usize {
    (y..y + h)
        .flat_map(|py| (x..x + w).map(move |px| (px, py)))
        .filter(|&(px, py)| image.get_pixel(px, py) == &colour)
        .count()
}

#[test]
fn a_fake_face_gets_a_red_outline_on_its_box_edges_and_nothing_elsewhere() {
    let b = bbox(100, 120, 80, 80);
    let out = annotate(
        grey(400, 300),
        &with_faces(vec![face(0, b, 0.93)], FaceMode::Detect),
    );
    let line = Style::for_size(400, 300).line;
    assert_eq!(line, 2);
    // Every edge, at the box's own edge pixels and one pixel in.
    for (x, y) in [
        (100, 160),
        (101, 160),
        (179, 160),
        (178, 160),
        (140, 120),
        (140, 121),
        (140, 199),
        (140, 198),
    ] {
        assert_eq!(out.get_pixel(x, y), &FAKE, "({x}, {y})");
    }
    // Inside the frame and outside the box: untouched.
    for (x, y) in [
        (102, 160),
        (140, 160),
        (177, 160),
        (99, 160),
        (181, 160),
        (140, 200),
    ] {
        assert_eq!(out.get_pixel(x, y), &GREY, "({x}, {y})");
    }
    // Away from the box and its tag (above it, 200 px wide), the picture
    // is as it was.
    assert_eq!(count(&out, (0, 0, 90, 300), GREY), 90 * 300);
    assert_eq!(count(&out, (190, 120, 210, 180), GREY), 210 * 180);
    assert_eq!(count(&out, (310, 0, 90, 300), GREY), 90 * 300);
    assert_eq!(count(&out, (0, 210, 400, 90), GREY), 400 * 90);
}

#[test]
fn the_tag_sits_above_the_box_red_with_white_text() {
    let b = bbox(100, 120, 80, 80);
    let out = annotate(
        grey(400, 300),
        &with_faces(vec![face(0, b, 0.93)], FaceMode::Detect),
    );
    let style = Style::for_size(400, 300);
    let text = tag_text(0, Label::Fake, 0.93);
    assert_eq!(text, "#0 fake 0.93");
    let (w, h) = style.tag_size(&text);
    let area = (100, 120 - h, w, h);
    let (red, white) = (count(&out, area, FAKE), count(&out, area, INK));
    assert_eq!(
        red + white,
        (w * h) as usize,
        "the tag is red and white only"
    );
    assert!(
        white > 50 && red > white,
        "glyphs drawn: {white} white, {red} red"
    );
    // Nothing above the tag.
    assert_eq!(
        count(&out, (0, 0, 400, 120 - h), GREY),
        (400 * (120 - h)) as usize
    );
}

#[test]
fn a_real_face_is_green_and_each_face_gets_its_own_colour() {
    let fake = bbox(40, 100, 60, 60);
    let real = bbox(250, 100, 60, 60);
    let out = annotate(
        grey(400, 300),
        &with_faces(
            vec![face(0, fake, 0.8), face(1, real, 0.1)],
            FaceMode::Detect,
        ),
    );
    assert_eq!(out.get_pixel(40, 130), &FAKE);
    assert_eq!(out.get_pixel(250, 130), &REAL);
    assert_eq!(out.get_pixel(309, 130), &REAL);
    assert_eq!(count(&out, (250, 100, 60, 60), FAKE), 0);
    assert_eq!(count(&out, (40, 100, 60, 60), REAL), 0);
}

#[test]
fn a_box_at_the_top_right_corner_keeps_its_tag_inside_the_image() {
    let b = bbox(360, 0, 40, 40);
    let out = annotate(
        grey(400, 300),
        &with_faces(vec![face(0, b, 0.7)], FaceMode::Detect),
    );
    let (w, h) = Style::for_size(400, 300).tag_size("#0 fake 0.70");
    // No room above: inside the box's top; no room right: moved left.
    let area = (400 - w, 0, w, h);
    assert_eq!(
        count(&out, area, FAKE) + count(&out, area, INK),
        (w * h) as usize
    );
    assert_eq!(
        out.get_pixel(399, 39),
        &FAKE,
        "the box's bottom-right corner"
    );
}

#[test]
fn a_box_past_the_image_is_clipped_not_a_panic() {
    let b = bbox(390, 290, 50, 50);
    let out = annotate(
        grey(400, 300),
        &with_faces(vec![face(0, b, 0.2)], FaceMode::Detect),
    );
    assert_eq!(out.get_pixel(390, 295), &REAL);
    assert_eq!(out.dimensions(), (400, 300));
}

#[test]
fn no_face_gets_a_caption_and_no_box() {
    let v = no_face_verdict(Uuid::nil(), FacesSkipped::default(), model());
    assert_eq!(caption_of(&v).as_deref(), Some("no face"));
    let out = annotate(grey(400, 300), &v);
    let style = Style::for_size(400, 300);
    let (w, h) = style.tag_size("no face");
    let p = style.pad();
    let area = (p, p, w, h);
    assert_eq!(
        count(&out, area, CAPTION) + count(&out, area, INK),
        (w * h) as usize
    );
    assert!(count(&out, area, INK) > 30);
    assert_eq!(count(&out, (0, 0, 400, 300), FAKE), 0);
    assert_eq!(count(&out, (0, 0, 400, 300), REAL), 0);
    assert_eq!(
        count(&out, (0, p + h, 400, 300 - p - h), GREY),
        (400 * (300 - p - h)) as usize
    );
}

#[test]
fn a_whole_image_fallback_says_so_in_its_caption() {
    let mut v = no_face_verdict(Uuid::nil(), FacesSkipped::default(), model());
    v.status = crate::domain::VerdictStatus::Analysed;
    v.face_mode = FaceMode::WholeImage;
    v.label = Some(Label::Real);
    v.p_fake = Some(0.31);
    assert_eq!(
        caption_of(&v).as_deref(),
        Some("no face - whole image real 0.31")
    );
}

#[test]
fn faces_off_draws_nothing() {
    let image = RgbImage::from_fn(120, 90, |x, y| Rgb([x as u8, y as u8, 7]));
    let mut v = with_faces(vec![], FaceMode::Off);
    v.face_count = None;
    v.label = Some(Label::Fake);
    v.p_fake = Some(0.9);
    assert_eq!(caption_of(&v), None);
    assert_eq!(annotate(image.clone(), &v), image);
}

#[test]
fn lines_and_text_grow_with_the_picture() {
    assert_eq!(Style::for_size(256, 256), Style { line: 2, text: 2 });
    assert_eq!(Style::for_size(2000, 1200), Style { line: 5, text: 4 });
    assert_eq!(Style::for_size(4000, 4000), Style { line: 10, text: 8 });
}
