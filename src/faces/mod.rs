//! Faces in whole uploads: DFA-GPT is trained and asked about face crops,
//! so a screening service finds every face first and analyses each one.
//!
//! - `detect`: the SeetaFace frontal detector (`rustface`, its model file
//!   embedded from `models/`), run on a downscaled grey copy, boxes mapped
//!   back to the original pixels, weak and tiny boxes dropped, largest first
//! - `crop`: the square, margin-enlarged crop DFA-GPT expects around a box
//! - `stage`: both, as the analysis runs them (blocking threads, budget)
//!
//! Pure CPU work on decoded pixels: callers run it off the async threads.

mod crop;
mod detect;
mod stage;

pub use crop::{crop_square, crop_to, square_around};
pub use detect::{Detection, FaceDetector, FaceError};
pub use stage::{FaceStage, Found, FoundFace};

pub use crate::domain::FaceBox;
