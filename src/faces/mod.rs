//! Faces in whole uploads: DFA-GPT is trained and asked about face crops,
//! so a screening service finds every face first and analyses each one.
//!
//! - `detect`: the SeetaFace frontal detector (`rustface`, its model file
//!   embedded from `models/`), run on a downscaled grey copy, boxes mapped
//!   back to the original pixels, weak and tiny boxes dropped, largest first
//! - `crop`: the square, margin-enlarged crop DFA-GPT expects around a box
//!
//! Pure CPU work on decoded pixels: callers run it off the async threads.

mod crop;
mod detect;

pub use crop::{crop_square, square_around};
pub use detect::{Detection, FaceDetector, FaceError};

use serde::{Deserialize, Serialize};

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

    #[test]
    fn iou_of_boxes() {
        assert_eq!(b(0, 0, 10, 10).iou(&b(0, 0, 10, 10)), 1.0);
        assert_eq!(b(0, 0, 10, 10).iou(&b(20, 20, 5, 5)), 0.0);
        let half = b(0, 0, 10, 10).iou(&b(5, 0, 10, 10));
        assert!((half - 50.0 / 150.0).abs() < 1e-12, "{half}");
    }
}
