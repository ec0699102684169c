//! Face detection with SeetaFace's frontal cascade (`rustface`). It runs on
//! a grey copy no longer than `faces.detect_max_side` on its longest side:
//! on a 3000² upload the detector takes seconds and finds false faces at
//! low scores, while faces that matter stay well above its 20 px window
//! after downscaling. Boxes come back in the original pixels.

use std::panic::{catch_unwind, AssertUnwindSafe};

use image::{imageops, ImageBuffer, Rgb};

use super::FaceBox;
use crate::settings::FaceSettings;

/// The detector's model: SeetaFace frontal v1.0 (BSD-2-Clause, see
/// models/seeta_fd_frontal_v1.0.LICENSE), compiled in so nothing is fetched.
static MODEL: &[u8] = include_bytes!("../../models/seeta_fd_frontal_v1.0.bin");

/// SeetaFace's smallest sliding window.
const MIN_WINDOW: u32 = 20;

#[derive(Debug, Clone, thiserror::Error)]
pub enum FaceError {
    #[error("the face model does not load: {0}")]
    Model(String),
    #[error("{width}x{height} pixels but {len} RGB bytes")]
    Pixels { width: u32, height: u32, len: usize },
    #[error("the face detector failed: {0}")]
    Detector(String),
    /// The runtime shut down while detection was running: nothing is wrong
    /// with the image, and the request must stay unfinished.
    #[error("face detection was cancelled (shutdown)")]
    Cancelled,
}

impl FaceError {
    /// Stable machine-readable kind for outputs and dead-letter headers.
    pub fn kind(&self) -> &'static str {
        match self {
            FaceError::Cancelled => "cancelled",
            _ => "face_detection",
        }
    }
}

/// What detection found in one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// Largest first, at most `faces.max_per_image`.
    pub faces: Vec<FaceBox>,
    /// Boxes dropped for a side under `faces.min_face_px`.
    pub too_small: usize,
    /// Boxes dropped beyond `faces.max_per_image` (the smallest).
    pub over_cap: usize,
}

pub struct FaceDetector {
    model: rustface::Model,
    settings: FaceSettings,
}

impl FaceDetector {
    pub fn new(settings: FaceSettings) -> Result<FaceDetector, FaceError> {
        let model = rustface::read_model(MODEL).map_err(|e| FaceError::Model(e.to_string()))?;
        Ok(FaceDetector { model, settings })
    }

    /// Every face in an RGB image (`rgb`: width × height × 3 bytes).
    pub fn detect(&self, width: u32, height: u32, rgb: &[u8]) -> Result<Detection, FaceError> {
        let pixels = ImageBuffer::<Rgb<u8>, &[u8]>::from_raw(width, height, rgb).ok_or(
            FaceError::Pixels {
                width,
                height,
                len: rgb.len(),
            },
        )?;
        let s = &self.settings;
        let longest = width.max(height).max(1);
        let scale = (s.detect_max_side as f32 / longest as f32).min(1.0);
        let (sw, sh) = (
            ((width as f32 * scale).round() as u32).max(1),
            ((height as f32 * scale).round() as u32).max(1),
        );
        if sw.min(sh) < MIN_WINDOW {
            return Ok(Detection {
                faces: vec![],
                too_small: 0,
                over_cap: 0,
            });
        }
        // Downscaled first, by box averaging straight from the decoded pixels:
        // no full-size grey copy and no float buffer of the original's size.
        let grey = if (sw, sh) == (width, height) {
            imageops::grayscale(&pixels)
        } else {
            imageops::grayscale(&imageops::thumbnail(&pixels, sw, sh))
        };
        let min_window = ((s.min_face_px as f32 * scale).floor() as u32).max(MIN_WINDOW);
        let found = self.run(&grey, sw, sh, min_window)?;
        let mut faces: Vec<FaceBox> = found
            .iter()
            .filter(|f| f.score() >= s.min_score)
            .map(|f| to_original(f.bbox(), f.score(), scale, width, height))
            .collect();
        let before = faces.len();
        faces.retain(|f| f.w.min(f.h) >= s.min_face_px);
        let too_small = before - faces.len();
        faces.sort_by(|a, b| b.area().cmp(&a.area()).then(b.score.total_cmp(&a.score)));
        let over_cap = faces.len().saturating_sub(s.max_per_image);
        faces.truncate(s.max_per_image);
        Ok(Detection {
            faces,
            too_small,
            over_cap,
        })
    }

    fn run(
        &self,
        grey: &image::GrayImage,
        w: u32,
        h: u32,
        min_window: u32,
    ) -> Result<Vec<rustface::FaceInfo>, FaceError> {
        let mut detector = rustface::create_detector_with_model(self.model.clone());
        detector.set_min_face_size(min_window);
        // The cascade's own cut-off; `faces.min_score` filters after it.
        detector.set_score_thresh(self.settings.min_score.min(2.0));
        detector.set_pyramid_scale_factor(0.8);
        detector.set_slide_window_step(4, 4);
        let data = rustface::ImageData::new(grey.as_raw(), w, h);
        // The crate panics on what it calls illegal input; the checks above
        // rule that out, and this keeps a surprise from taking a worker down.
        catch_unwind(AssertUnwindSafe(|| detector.detect(&data))).map_err(|p| {
            let why = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into());
            FaceError::Detector(why)
        })
    }
}

/// A detector box on the scaled copy, in the original's pixels (clamped).
fn to_original(r: &rustface::Rectangle, score: f64, scale: f32, w: u32, h: u32) -> FaceBox {
    let back = |v: f32| (v / scale).round().max(0.0) as u32;
    let x = back(r.x() as f32).min(w.saturating_sub(1));
    let y = back(r.y() as f32).min(h.saturating_sub(1));
    let x1 = back(r.x() as f32 + r.width() as f32).min(w);
    let y1 = back(r.y() as f32 + r.height() as f32).min(h);
    FaceBox {
        x,
        y,
        w: x1.saturating_sub(x).max(1),
        h: y1.saturating_sub(y).max(1),
        score,
    }
}
