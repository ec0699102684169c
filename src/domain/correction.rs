//! A reviewer's correction of a stored verdict, as the feedback topic carries
//! it once validated. Training reads the standing correction of each verdict.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::face::CropSquare;
use super::verdict::{Artifact, ForgeryType, Label};

/// A validated correction.
#[derive(Debug, Clone, PartialEq)]
pub struct Correction {
    pub request_id: Uuid,
    pub reviewer: String,
    pub label: Label,
    pub forgery_type: Option<ForgeryType>,
    pub artifacts: Option<Vec<Artifact>>,
    pub note: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The standing correction of a verdict (the latest by any reviewer), with
/// what training needs from the verdict: its image and, when the verdict
/// was a face's, the square of the image the model saw (a correction is of
/// the verdict, which is its primary face's).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StandingCorrection {
    pub revision: i64,
    pub request_id: Uuid,
    pub reviewer: String,
    pub label: Label,
    pub forgery_type: Option<ForgeryType>,
    pub artifacts: Option<Value>,
    pub note: Option<String>,
    pub image_sha256: String,
    /// The label the model gave, which the correction may contradict; None
    /// for a `no_face` verdict (no face found, nothing screened).
    pub verdict_label: Option<Label>,
    /// The primary face's crop square (None: the verdict was of the whole
    /// image, or found no face).
    pub crop_x: Option<i32>,
    pub crop_y: Option<i32>,
    pub crop_side: Option<i32>,
}

impl StandingCorrection {
    /// The square of the image the corrected verdict was made from; None:
    /// the whole image.
    pub fn crop(&self) -> Option<CropSquare> {
        let px = |v: Option<i32>| v.and_then(|v| u32::try_from(v).ok());
        Some(CropSquare {
            x: px(self.crop_x)?,
            y: px(self.crop_y)?,
            side: px(self.crop_side).filter(|s| *s > 0)?,
        })
    }
}
