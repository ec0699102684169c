//! The face stage as the analysis runs it: detection and cropping on a
//! blocking thread, the decoded image given up for its crops, which keep
//! only their own share of the decode budget.

use std::sync::Arc;
use std::time::Instant;

use image::{ImageBuffer, Rgb};

use super::crop::{crop_to, square_around};
use super::{FaceDetector, FaceError};
use crate::domain::{BBox, CropSquare, FaceBox, FaceMode, FacesSkipped};
use crate::intake::DecodedImage;
use crate::settings::FaceSettings;

/// The detector and its settings, built once per process and shared.
#[derive(Clone)]
pub struct FaceStage {
    detector: Arc<FaceDetector>,
    settings: FaceSettings,
}

/// One face found, with the square the model will see.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FoundFace {
    pub face: FaceBox,
    pub crop: CropSquare,
}

impl FoundFace {
    pub fn bbox(&self) -> BBox {
        BBox {
            x: self.face.x,
            y: self.face.y,
            w: self.face.w,
            h: self.face.h,
        }
    }
}

/// The faces of one image and their crops, in the same order.
#[derive(Debug)]
pub struct Found {
    pub faces: Vec<FoundFace>,
    pub crops: Vec<DecodedImage>,
    pub skipped: FacesSkipped,
    /// The image itself when no face was found (not split into crops).
    pub unsplit: Option<DecodedImage>,
    /// Detection and cropping, in milliseconds.
    pub ms: f64,
}

impl FaceStage {
    pub fn new(settings: &FaceSettings) -> Result<FaceStage, FaceError> {
        Ok(FaceStage {
            detector: Arc::new(FaceDetector::new(settings.clone())?),
            settings: settings.clone(),
        })
    }

    /// The same stage in another mode (`dfa analyze --faces`).
    pub fn with_mode(&self, mode: FaceMode) -> FaceStage {
        let mut stage = self.clone();
        stage.settings.mode = mode;
        stage
    }

    pub fn mode(&self) -> FaceMode {
        self.settings.mode
    }

    pub fn settings(&self) -> &FaceSettings {
        &self.settings
    }

    /// Every face in `image` (at most `faces.max_per_image`, largest first)
    /// and its crop at `faces.crop_px`. The image is given up for the crops.
    pub async fn find(&self, image: DecodedImage) -> Result<Found, FaceError> {
        let stage = self.clone();
        blocking(move || stage.find_blocking(image)).await
    }

    /// The crop of a square found earlier (a stored face's), for follow-up
    /// questions; the image is given up for it.
    pub async fn crop(
        &self,
        image: DecodedImage,
        square: CropSquare,
    ) -> Result<DecodedImage, FaceError> {
        let size = self.settings.crop_px;
        blocking(move || {
            let mut crops = image.split_into(|w, h, rgb| match view(w, h, rgb) {
                Some(v) => vec![(size, size, crop_to(&v, square, size).into_raw())],
                None => vec![],
            });
            crops
                .pop()
                .ok_or_else(|| FaceError::Detector("crop failed".into()))
        })
        .await
    }

    fn find_blocking(&self, image: DecodedImage) -> Result<Found, FaceError> {
        let started = Instant::now();
        let detection = self
            .detector
            .detect(image.width(), image.height(), image.rgb())?;
        let (w, h) = (image.width(), image.height());
        let skipped = FacesSkipped {
            too_small: detection.too_small as u32,
            over_cap: detection.over_cap as u32,
        };
        if detection.faces.is_empty() {
            return Ok(Found {
                faces: vec![],
                crops: vec![],
                skipped,
                unsplit: Some(image),
                ms: started.elapsed().as_secs_f64() * 1000.0,
            });
        }
        let faces: Vec<FoundFace> = detection
            .faces
            .iter()
            .map(|f| FoundFace {
                face: *f,
                crop: square_around(f, w, h, self.settings.margin),
            })
            .collect();
        let size = self.settings.crop_px;
        let crops = image.split_into(|w, h, rgb| match view(w, h, rgb) {
            Some(v) => faces
                .iter()
                .map(|f| (size, size, crop_to(&v, f.crop, size).into_raw()))
                .collect(),
            None => vec![],
        });
        if crops.len() != faces.len() {
            return Err(FaceError::Pixels {
                width: w,
                height: h,
                len: 0,
            });
        }
        Ok(Found {
            faces,
            crops,
            skipped,
            unsplit: None,
            ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }
}

fn view(w: u32, h: u32, rgb: &[u8]) -> Option<ImageBuffer<Rgb<u8>, &[u8]>> {
    ImageBuffer::from_raw(w, h, rgb)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, FaceError> + Send + 'static,
) -> Result<T, FaceError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(if e.is_cancelled() {
            FaceError::Cancelled
        } else {
            FaceError::Detector(format!("face stage panicked: {e}"))
        })
    })
}
