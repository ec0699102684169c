//! `[faces]`: finding faces in whole uploads before the model sees them.

use serde::Deserialize;

use super::{invalid, SettingsError};

pub use crate::domain::FaceMode;

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
    /// Crops are resized to this square, the vision tower's input (336 for
    /// LLaVA-1.5's CLIP ViT-L/14-336); the projector resizes again if its
    /// tower differs, so this only has to bound the crops' memory well.
    pub crop_px: u32,
    /// The same image bytes seen again with the same model (base, mmproj,
    /// adapter) and face mode reuse the stored face analysis.
    pub reuse_reposts: bool,
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
        if !(32..=1024).contains(&self.crop_px) {
            return Err(invalid("faces.crop_px", "must lie in [32, 1024]"));
        }
        Ok(())
    }
}
