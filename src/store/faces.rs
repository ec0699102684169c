//! A verdict's faces, as stored by `insert_verdicts` (`faces` table).

use sqlx::types::Json;
use uuid::Uuid;

use super::{Store, StoreError};
use crate::domain::{Artifact, BBox, CropSquare, FaceVerdict, ForgeryType, Label, TypeScores};

#[derive(sqlx::FromRow)]
struct FaceRow {
    face_index: i16,
    x: i32,
    y: i32,
    w: i32,
    h: i32,
    crop_x: i32,
    crop_y: i32,
    crop_side: i32,
    detector_score: f64,
    p_fake: f32,
    label: Label,
    forgery_type: Option<ForgeryType>,
    type_scores: Json<TypeScores>,
    artifacts: Json<Vec<Artifact>>,
    explanation: Option<String>,
}

impl From<FaceRow> for FaceVerdict {
    fn from(r: FaceRow) -> FaceVerdict {
        // The table's checks keep these non-negative.
        let px = |v: i32| u32::try_from(v).unwrap_or(0);
        FaceVerdict {
            index: u32::try_from(r.face_index).unwrap_or(0),
            bbox: BBox {
                x: px(r.x),
                y: px(r.y),
                w: px(r.w),
                h: px(r.h),
            },
            detector_score: r.detector_score,
            crop: CropSquare {
                x: px(r.crop_x),
                y: px(r.crop_y),
                side: px(r.crop_side),
            },
            label: r.label,
            p_fake: r.p_fake,
            forgery_type: r.forgery_type,
            type_scores: r.type_scores.0,
            artifacts: r.artifacts.0,
            explanation: r.explanation,
        }
    }
}

impl Store {
    /// A verdict's faces, by index (largest first); none for a verdict made
    /// without face detection or on an image without a face.
    pub async fn faces(&self, request_id: Uuid) -> Result<Vec<FaceVerdict>, StoreError> {
        let rows: Vec<FaceRow> = sqlx::query_as(
            "SELECT face_index, x, y, w, h, crop_x, crop_y, crop_side, detector_score, p_fake, \
             label, forgery_type, type_scores, artifacts, explanation \
             FROM faces WHERE request_id = $1 ORDER BY face_index",
        )
        .bind(request_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(FaceVerdict::from).collect())
    }
}
