//! `[faces]`: finding faces in whole uploads before the model sees them.

use serde::Deserialize;

use super::{invalid, SettingsError};

/// What the face stage does with an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaceMode {
    /// Find every face and analyse each crop (whole uploads).
    Detect,
    /// The whole image as one face (the behaviour before face detection).
    WholeImage,
    /// Inputs are face crops already (e.g. DFA-Instruct): no detection.
    Off,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaceSettings {
    pub mode: FaceMode,
    /// Detection runs on a copy at most this long on its longest side.
    pub detect_max_side: u32,
    /// Boxes the detector scores lower are not faces.
    pub min_score: f64,
    /// Faces with a side shorter than this (original pixels) are skipped.
    pub min_face_px: u32,
    /// At most this many faces per image, largest first.
    pub max_per_image: usize,
    /// The crop's side is the box's longest side times this.
    pub margin: f32,
}

impl FaceSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if !(64..=8192).contains(&self.detect_max_side) {
            return Err(invalid("faces.detect_max_side", "must lie in [64, 8192]"));
        }
        if self.min_score.is_nan() || self.min_score <= 0.0 {
            return Err(invalid("faces.min_score", "must be above 0"));
        }
        if self.min_face_px < 20 {
            return Err(invalid(
                "faces.min_face_px",
                "must be at least 20 (the detector's window)",
            ));
        }
        if !(1..=64).contains(&self.max_per_image) {
            return Err(invalid("faces.max_per_image", "must lie in [1, 64]"));
        }
        if !(1.0..=3.0).contains(&self.margin) {
            return Err(invalid("faces.margin", "must lie in [1, 3]"));
        }
        Ok(())
    }
}
