//! A verdict's faces as `GET /api/verdicts/{id}` shows them: where each one
//! is in the image, the square the model saw, and what it said about it.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::{Artifact, FaceVerdict, FacesSkipped, TypeScores};

/// One face found and analysed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FaceView {
    /// Its number in the verdict, largest face first: what a follow-up
    /// question names (`face`).
    pub index: u32,
    /// The face whose verdict the image carries (the most suspicious).
    pub primary: bool,
    /// Where the face is, in the original image's pixels.
    pub bbox: FaceBoxView,
    /// The detector's confidence (higher is surer).
    pub detector_score: f64,
    /// The square the model saw (before it was resized).
    pub crop: CropView,
    /// `real` or `fake`.
    pub label: String,
    pub p_fake: f32,
    /// Set when the label is `fake`.
    pub forgery_type: Option<String>,
    /// `{face_swap, face_reenactment, face_editing, entire_face_synthesis}`.
    #[schema(value_type = Object)]
    pub type_scores: TypeScores,
    /// `[{region, text}]`; empty when no description was generated.
    #[schema(value_type = Vec<Object>)]
    pub artifacts: Vec<Artifact>,
    pub explanation: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct FaceBoxView {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct CropView {
    pub x: u32,
    pub y: u32,
    pub side: u32,
}

/// Faces found but not analysed.
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema)]
pub struct FacesSkippedView {
    /// Smaller than `faces.min_face_px`.
    pub too_small: u32,
    /// Beyond `faces.max_per_image` (the smallest ones).
    pub over_cap: u32,
}

impl FaceView {
    pub fn of(f: FaceVerdict, primary: Option<u32>) -> FaceView {
        FaceView {
            index: f.index,
            primary: primary == Some(f.index),
            bbox: FaceBoxView {
                x: f.bbox.x,
                y: f.bbox.y,
                w: f.bbox.w,
                h: f.bbox.h,
            },
            detector_score: f.detector_score,
            crop: CropView {
                x: f.crop.x,
                y: f.crop.y,
                side: f.crop.side,
            },
            label: f.label.as_str().into(),
            p_fake: f.p_fake,
            forgery_type: f.forgery_type.map(|t| t.as_str().into()),
            type_scores: f.type_scores,
            artifacts: f.artifacts,
            explanation: f.explanation,
        }
    }
}

impl FacesSkippedView {
    /// The stored `faces_skipped` JSON; zeros when it has another shape
    /// (the column's default is zeros, so that is what it would say).
    pub fn of(stored: &Value) -> FacesSkippedView {
        let s: FacesSkipped = serde_json::from_value(stored.clone()).unwrap_or_default();
        FacesSkippedView {
            too_small: s.too_small,
            over_cap: s.over_cap,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn skipped_faces_read_from_the_stored_json_or_zero() {
        let s = FacesSkippedView::of(&json!({"too_small": 2, "over_cap": 1}));
        assert_eq!((s.too_small, s.over_cap), (2, 1));
        let odd = FacesSkippedView::of(&json!("x"));
        assert_eq!((odd.too_small, odd.over_cap), (0, 0));
    }
}
