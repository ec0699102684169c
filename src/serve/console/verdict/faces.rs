//! The faces on the verdict page: a box over each face, drawn as an SVG
//! laid over the image in the image's own pixels (its viewBox is the
//! image's size, so the boxes need no scaling here; CSS stretches both
//! alike). Numbers only go into SVG attributes: the CSP allows no inline
//! styles. The image's size comes from its header, oriented as browsers
//! show it (EXIF), which is how the face stage saw it.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{ImageDecoder, ImageReader};
use serde::Serialize;

use crate::serve::verdicts::FaceView;

/// The overlay: the image's size and a mark per face.
#[derive(Debug, Serialize)]
pub struct Overlay {
    pub width: u32,
    pub height: u32,
    /// The tags' text size, in image pixels (so it reads alike on a small
    /// and on a large image): the SVG's `font-size` attribute.
    pub font: f64,
    pub marks: Vec<Mark>,
}

/// One face's box and its tag (`#index label p_fake`) above it.
#[derive(Debug, Serialize)]
pub struct Mark {
    pub index: u32,
    pub primary: bool,
    /// `face-fake` or `face-real` (verdict.css).
    pub class: &'static str,
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    pub tag_x: f64,
    pub tag_y: f64,
    pub tag_w: f64,
    pub tag_h: f64,
    pub text_x: f64,
    pub text_y: f64,
    pub text: String,
}

/// The overlay of `faces` on an image of `width`×`height`; None without
/// faces or without a size.
pub fn overlay(size: Option<(u32, u32)>, faces: &[FaceView]) -> Option<Overlay> {
    let (width, height) = size.filter(|(w, h)| *w > 0 && *h > 0)?;
    if faces.is_empty() {
        return None;
    }
    let font = round((f64::from(width.max(height)) / 36.0).max(8.0));
    let pad = round(font * 0.3);
    let tag_h = round(font + 2.0 * pad);
    let marks = faces
        .iter()
        .map(|f| {
            let text = format!("#{} {} {:.2}", f.index, f.label, f.p_fake);
            // A monospace-ish estimate: the tag only has to hold the text.
            let tag_w = round(text.chars().count() as f64 * font * 0.62 + 2.0 * pad);
            let (x, y) = (f64::from(f.bbox.x), f64::from(f.bbox.y));
            // Above the box when there is room, else inside its top edge;
            // kept within the image's width.
            let tag_y = if y >= tag_h { y - tag_h } else { y };
            let tag_x = x.min((f64::from(width) - tag_w).max(0.0));
            Mark {
                index: f.index,
                primary: f.primary,
                class: if f.label == "fake" {
                    "face-fake"
                } else {
                    "face-real"
                },
                x: f.bbox.x,
                y: f.bbox.y,
                w: f.bbox.w,
                h: f.bbox.h,
                tag_x: round(tag_x),
                tag_y: round(tag_y),
                tag_w,
                tag_h,
                text_x: round(tag_x + pad),
                text_y: round(tag_y + tag_h - pad - font * 0.15),
                text,
            }
        })
        .collect();
    Some(Overlay {
        width,
        height,
        font,
        marks,
    })
}

/// Width and height as shown, from the header alone (no pixel decoded);
/// None for bytes no decoder takes.
pub fn shown_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut decoder = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_decoder()
        .ok()?;
    let (w, h) = decoder.dimensions();
    let turned = matches!(
        decoder.orientation().unwrap_or(Orientation::NoTransforms),
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    );
    Some(if turned { (h, w) } else { (w, h) })
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{BBox, CropSquare, FaceVerdict, Label, TypeScores};

    fn face(index: u32, x: u32, y: u32, label: Label, primary: bool) -> FaceView {
        let verdict = FaceVerdict {
            index,
            bbox: BBox {
                x,
                y,
                w: 100,
                h: 120,
            },
            detector_score: 10.0,
            crop: CropSquare { x, y, side: 130 },
            label,
            p_fake: 0.875,
            forgery_type: None,
            type_scores: TypeScores::from_array([0.25; 4]),
            artifacts: vec![],
            explanation: None,
        };
        FaceView::of(verdict, primary.then_some(index))
    }

    #[test]
    fn each_face_gets_its_box_in_image_pixels_and_a_tag_that_stays_inside() {
        let faces = [
            face(0, 1400, 500, Label::Fake, true),
            face(1, 150, 10, Label::Real, false),
            face(2, 1950, 600, Label::Real, false),
        ];
        let o = overlay(Some((2000, 1200)), &faces).unwrap();
        assert_eq!((o.width, o.height), (2000, 1200));
        assert_eq!(o.marks.len(), 3);
        let m = &o.marks[0];
        assert_eq!((m.x, m.y, m.w, m.h), (1400, 500, 100, 120));
        assert!(m.primary && m.class == "face-fake");
        assert_eq!(m.text, "#0 fake 0.88");
        assert!((m.tag_y + m.tag_h - 500.0).abs() < 1e-9, "above the box");
        // No room above: inside the top edge.
        assert_eq!(o.marks[1].tag_y, 10.0);
        assert!(!o.marks[1].primary && o.marks[1].class == "face-real");
        // Near the right edge: moved left to fit.
        let right = &o.marks[2];
        assert!(right.tag_x + right.tag_w <= 2000.0 + 1e-9, "{right:?}");
    }

    #[test]
    fn no_faces_or_no_size_draw_nothing() {
        let one = [face(0, 0, 0, Label::Real, true)];
        assert!(overlay(Some((10, 10)), &[]).is_none());
        assert!(overlay(None, &one).is_none());
        assert!(overlay(Some((0, 10)), &one).is_none());
    }

    /// The size the boxes are drawn in is the one the face stage found
    /// them in: intake's decode, EXIF orientation applied.
    #[test]
    fn the_size_is_the_oriented_decodes() {
        let settings = crate::settings::Settings::embedded()
            .expect("settings")
            .image;
        let jpeg = encode(image::ImageFormat::Jpeg);
        for bytes in [
            encode(image::ImageFormat::Png),
            jpeg.clone(),
            rotated(&jpeg),
        ] {
            let decoded = crate::intake::decode_image(&bytes, &settings).expect("decodes");
            assert_eq!(
                shown_size(&bytes),
                Some((decoded.width(), decoded.height()))
            );
        }
        assert_eq!(shown_size(&rotated(&jpeg)), Some((20, 40)));
        assert_eq!(shown_size(b"not an image"), None);
    }

    fn encode(format: image::ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image::RgbImage::from_pixel(40, 20, image::Rgb([90, 120, 150]))
            .write_to(&mut out, format)
            .expect("encodes");
        out.into_inner()
    }

    /// `jpeg` with an APP1 EXIF segment saying "rotate 90° clockwise" (6).
    fn rotated(jpeg: &[u8]) -> Vec<u8> {
        let mut tiff = b"MM\x00\x2a\x00\x00\x00\x08".to_vec(); // big-endian, IFD at 8
        tiff.extend_from_slice(&[0, 1]); // one entry:
        tiff.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0]); // Orientation = 6
        tiff.extend_from_slice(&[0, 0, 0, 0]); // no next IFD
        let mut app1 = b"Exif\x00\x00".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }
}
