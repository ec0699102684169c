//! Faces in an upload: where each one is, and what the model said about it.
//! An image's verdict is its most suspicious face's (`most_suspicious`).

use serde::{Deserialize, Serialize};

use super::verdict::{Artifact, ForgeryType, Label, TypeScores};

/// What the face stage does with an image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaceMode {
    /// Find every face and analyse each crop; no face: status `no_face`.
    Detect,
    /// As `detect`, but an image without a face is analysed whole.
    WholeImage,
    /// No detection: the image is a face crop already (e.g. DFA-Instruct).
    /// Verdicts made before the face stage existed read as `off`.
    #[default]
    Off,
}

impl FaceMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FaceMode::Detect => "detect",
            FaceMode::WholeImage => "whole_image",
            FaceMode::Off => "off",
        }
    }
}

impl std::str::FromStr for FaceMode {
    type Err = super::verdict::UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [FaceMode::Detect, FaceMode::WholeImage, FaceMode::Off]
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| super::verdict::UnknownName {
                what: "faces mode",
                name: s.to_string(),
            })
    }
}

/// Whether the image was screened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictStatus {
    /// Screened: label and p_fake are set.
    #[default]
    Analysed,
    /// Face detection found no face (`faces.mode = "detect"`): nothing was
    /// screened, so there is no label and no p_fake.
    NoFace,
}

impl VerdictStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictStatus::Analysed => "analysed",
            VerdictStatus::NoFace => "no_face",
        }
    }
}

/// A face's box in the original image's pixels, and the detector's score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaceBox {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    /// The detector's confidence (SeetaFace's cascade score; higher is surer).
    pub score: f64,
}

impl FaceBox {
    pub fn area(&self) -> u64 {
        u64::from(self.w) * u64::from(self.h)
    }

    /// Intersection over union with `other`, in [0, 1].
    pub fn iou(&self, other: &FaceBox) -> f64 {
        let x0 = self.x.max(other.x);
        let y0 = self.y.max(other.y);
        let x1 = (self.x + self.w).min(other.x + other.w);
        let y1 = (self.y + self.h).min(other.y + other.h);
        if x1 <= x0 || y1 <= y0 {
            return 0.0;
        }
        let inter = u64::from(x1 - x0) * u64::from(y1 - y0);
        inter as f64 / (self.area() + other.area() - inter) as f64
    }
}

/// The square of the original image the model saw for a face (before it
/// was resized to the vision tower's input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CropSquare {
    pub x: u32,
    pub y: u32,
    pub side: u32,
}

/// Where a face is (original pixels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BBox {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// One face's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceVerdict {
    /// Its place in `faces`: largest face first.
    pub index: u32,
    pub bbox: BBox,
    pub detector_score: f64,
    pub crop: CropSquare,
    pub label: Label,
    pub p_fake: f32,
    /// Set when the label is `fake`.
    pub forgery_type: Option<ForgeryType>,
    pub type_scores: TypeScores,
    pub artifacts: Vec<Artifact>,
    pub explanation: Option<String>,
}

/// Faces found but not analysed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacesSkipped {
    /// A side under `faces.min_face_px`.
    pub too_small: u32,
    /// Beyond `faces.max_per_image` (the smallest ones).
    pub over_cap: u32,
}

/// The face whose verdict the image carries: the highest p_fake, the
/// largest (first) face on ties.
pub fn most_suspicious(faces: &[FaceVerdict]) -> Option<&FaceVerdict> {
    faces
        .iter()
        .reduce(|best, f| if f.p_fake > best.p_fake { f } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: u32, y: u32, w: u32, h: u32) -> FaceBox {
        FaceBox {
            x,
            y,
            w,
            h,
            score: 1.0,
        }
    }

    fn face(index: u32, p_fake: f32) -> FaceVerdict {
        FaceVerdict {
            index,
            bbox: BBox {
                x: 0,
                y: 0,
                w: 10,
                h: 10,
            },
            detector_score: 10.0,
            crop: CropSquare {
                x: 0,
                y: 0,
                side: 13,
            },
            label: Label::from_score(p_fake, 0.5),
            p_fake,
            forgery_type: None,
            type_scores: TypeScores::from_array([0.25; 4]),
            artifacts: vec![],
            explanation: None,
        }
    }

    #[test]
    fn iou_of_boxes() {
        assert_eq!(b(0, 0, 10, 10).iou(&b(0, 0, 10, 10)), 1.0);
        assert_eq!(b(0, 0, 10, 10).iou(&b(20, 20, 5, 5)), 0.0);
        let half = b(0, 0, 10, 10).iou(&b(5, 0, 10, 10));
        assert!((half - 50.0 / 150.0).abs() < 1e-12, "{half}");
    }

    #[test]
    fn the_most_suspicious_face_is_the_highest_p_fake_first_on_ties() {
        assert!(most_suspicious(&[]).is_none());
        let faces = [face(0, 0.2), face(1, 0.9), face(2, 0.9), face(3, 0.1)];
        assert_eq!(most_suspicious(&faces).map(|f| f.index), Some(1));
    }

    #[test]
    fn modes_and_statuses_have_stable_names() {
        for m in [FaceMode::Detect, FaceMode::WholeImage, FaceMode::Off] {
            assert_eq!(m.as_str().parse::<FaceMode>(), Ok(m));
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
        assert_eq!(
            serde_json::to_value(VerdictStatus::NoFace).unwrap(),
            "no_face"
        );
        assert!("none".parse::<FaceMode>().is_err());
    }
}
