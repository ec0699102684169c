//! The line people read on stderr for each image, next to the JSON line
//! scripts read on stdout: the verdict, then every face with its box.

use std::fmt::Write;
use std::path::Path;

use crate::domain::{FaceMode, Verdict, VerdictStatus};

/// `group.jpg: fake 0.93 (face #1 of 2) | #0 real 0.12 at x=185 y=365 115x115 | #1 fake …`
pub fn verdict_line(image: &Path, verdict: &Verdict) -> String {
    let mut line = format!("{}: ", image.display());
    let screened = verdict.label.zip(verdict.p_fake);
    match (verdict.status, screened) {
        (VerdictStatus::NoFace, _) | (_, None) => line.push_str("no face"),
        (VerdictStatus::Analysed, Some((label, p))) => {
            let _ = write!(line, "{} {p:.2}", label.as_str());
            if let Some(t) = verdict.forgery_type {
                let _ = write!(line, " {}", t.as_str());
            }
            match (verdict.face_mode, verdict.primary_face) {
                (FaceMode::Off, _) => line.push_str(" (whole image, faces off)"),
                (_, Some(i)) => {
                    let _ = write!(line, " (face #{i} of {})", verdict.faces.len());
                }
                (_, None) => line.push_str(" (no face, whole image)"),
            }
        }
    }
    let skipped = verdict.faces_skipped;
    if skipped.too_small + skipped.over_cap > 0 {
        let _ = write!(
            line,
            "; not analysed: {} too small, {} over the cap",
            skipped.too_small, skipped.over_cap
        );
    }
    if verdict.reused_from.is_some() {
        line.push_str("; reused");
    }
    for f in &verdict.faces {
        let b = f.bbox;
        let _ = write!(
            line,
            " | #{} {} {:.2} at x={} y={} {}x{}",
            f.index,
            f.label.as_str(),
            f.p_fake,
            b.x,
            b.y,
            b.w,
            b.h
        );
    }
    line
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use uuid::Uuid;

    use super::verdict_line;
    use crate::domain::{
        BBox, CropSquare, FaceMode, FaceVerdict, FacesSkipped, ForgeryType, Label, ModelIdentity,
        TypeScores,
    };
    use crate::engine::analyze::{image_verdict, no_face_verdict};

    fn model() -> ModelIdentity {
        ModelIdentity {
            base_sha256: String::new(),
            mmproj_sha256: String::new(),
            adapter: None,
        }
    }

    fn face(index: u32, x: u32, p_fake: f32) -> FaceVerdict {
        let label = Label::from_score(p_fake, 0.5);
        FaceVerdict {
            index,
            bbox: BBox {
                x,
                y: 20,
                w: 100,
                h: 110,
            },
            detector_score: 18.0,
            crop: CropSquare { x, y: 0, side: 143 },
            label,
            p_fake,
            forgery_type: (label == Label::Fake).then_some(ForgeryType::FaceSwap),
            type_scores: TypeScores::from_array([0.7, 0.1, 0.1, 0.1]),
            artifacts: vec![],
            explanation: None,
        }
    }

    #[test]
    fn every_face_with_its_box_after_the_image_verdict() {
        let v = image_verdict(
            Uuid::nil(),
            vec![face(0, 10, 0.12), face(1, 300, 0.93)],
            FacesSkipped {
                too_small: 3,
                over_cap: 0,
            },
            FaceMode::Detect,
            model(),
            &[],
        );
        assert_eq!(
            verdict_line(Path::new("group.jpg"), &v),
            "group.jpg: fake 0.93 face_swap (face #1 of 2); not analysed: 3 too small, 0 over the cap \
             | #0 real 0.12 at x=10 y=20 100x110 | #1 fake 0.93 at x=300 y=20 100x110"
        );
    }

    #[test]
    fn no_face_whole_image_and_faces_off_say_what_was_screened() {
        let none = no_face_verdict(Uuid::nil(), FacesSkipped::default(), model());
        assert_eq!(verdict_line(Path::new("p.png"), &none), "p.png: no face");

        let mut whole = none.clone();
        whole.status = crate::domain::VerdictStatus::Analysed;
        whole.face_mode = FaceMode::WholeImage;
        whole.label = Some(Label::Real);
        whole.p_fake = Some(0.25);
        assert_eq!(
            verdict_line(Path::new("p.png"), &whole),
            "p.png: real 0.25 (no face, whole image)"
        );

        let mut off = whole;
        off.face_mode = FaceMode::Off;
        off.face_count = None;
        assert_eq!(
            verdict_line(Path::new("c.png"), &off),
            "c.png: real 0.25 (whole image, faces off)"
        );
    }
}
