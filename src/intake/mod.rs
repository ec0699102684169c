//! Image intake: bytes in, a validated RGB image out, or a typed error.
//!
//! Limits on encoded bytes and on the pixel count declared in the header are
//! checked before anything is decoded, so a decompression bomb never allocates.
//! Decoded memory is budgeted per process (`Intake`, `image.decode_budget_bytes`):
//! a decode reserves its peak from the header before it allocates, and the
//! reservation lives as long as the decoded image, which the engine drops once
//! it has turned it into its own input.
//!
//! No decode here runs at reduced size: the image crate (0.25) exposes no
//! scaled decode. Its JPEG decoder, zune-jpeg 0.5, has no DCT scaling (no
//! 1/2, 1/4, 1/8 output), PNG and the others only decode whole frames, and
//! the vision tower's input size belongs to the model (mtmd resizes), so the
//! budget, not a smaller decode, is what bounds memory. What intake does
//! instead: 16-bit and RGBA pixels are narrowed to RGB8 in place and the
//! buffer shrunk at once, so a 16-bit image never holds both copies.

mod budget;
mod pixels;
mod probe;

use std::sync::Arc;
use std::time::Instant;

use image::{ImageDecoder, Limits};

pub use budget::{DecodeBudget, DecodePermit};
use probe::{corrupt, probe, reader, Header};

use crate::settings::ImageSettings;

/// A decoded, oriented RGB8 image that passed every intake check.
#[derive(Clone)]
pub struct DecodedImage {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
    /// Its share of the decode budget, given back when the last clone drops.
    _reserved: Option<Arc<DecodePermit>>,
}

impl std::fmt::Debug for DecodedImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DecodedImage({}x{})", self.width, self.height)
    }
}

impl DecodedImage {
    pub fn width(&self) -> u32 {
        self.width
    }
    pub fn height(&self) -> u32 {
        self.height
    }
    /// Row-major RGB bytes, `width * height * 3` long.
    pub fn rgb(&self) -> &[u8] {
        &self.rgb
    }

    /// Replaces this image with smaller ones made from its pixels (face
    /// crops): `make` gets (width, height, rgb) and returns the new images
    /// as (width, height, rgb). They share this image's reservation, shrunk
    /// to their total size once this image's pixels are gone. A buffer of
    /// the wrong length is dropped.
    pub fn split_into(
        self,
        make: impl FnOnce(u32, u32, &[u8]) -> Vec<(u32, u32, Vec<u8>)>,
    ) -> Vec<DecodedImage> {
        let DecodedImage {
            width,
            height,
            rgb,
            _reserved: reserved,
        } = self;
        let parts: Vec<(u32, u32, Vec<u8>)> = make(width, height, &rgb)
            .into_iter()
            .filter(|(w, h, px)| px.len() as u64 == u64::from(*w) * u64::from(*h) * 3)
            .collect();
        drop(rgb);
        let total: u64 = parts.iter().map(|p| p.2.len() as u64).sum();
        // The sole owner shrinks its share; a clone elsewhere still holds
        // the whole image, so the share stays whole until it drops.
        let reserved = reserved.map(|r| match Arc::try_unwrap(r) {
            Ok(mut permit) => {
                permit.shrink_to(total);
                Arc::new(permit)
            }
            Err(shared) => shared,
        });
        parts
            .into_iter()
            .map(|(width, height, rgb)| DecodedImage {
                width,
                height,
                rgb,
                _reserved: reserved.clone(),
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("the image is empty (0 bytes)")]
    Empty,
    #[error("unsupported image format: {0}")]
    UnsupportedFormat(String),
    #[error("corrupt image data: {0}")]
    Corrupt(String),
    #[error("image too large: {0}")]
    TooLarge(String),
    #[error("image too small: {width}x{height}, each side must be at least {min_side} pixels")]
    TooSmall {
        width: u32,
        height: u32,
        min_side: u32,
    },
}

impl ImageError {
    /// Stable machine-readable kind, used in CLI output and dead-letter headers.
    pub fn kind(&self) -> &'static str {
        match self {
            ImageError::Empty => "empty",
            ImageError::UnsupportedFormat(_) => "unsupported_format",
            ImageError::Corrupt(_) => "corrupt",
            ImageError::TooLarge(_) => "too_large",
            ImageError::TooSmall { .. } => "too_small",
        }
    }
}

/// Decodes `bytes` into an RGB image, applying the EXIF orientation, outside
/// any budget: for callers that decode one image at a time (training, the
/// benchmarks). Servers use `Intake::decode`.
pub fn decode_image(bytes: &[u8], limits: &ImageSettings) -> Result<DecodedImage, ImageError> {
    let header = probe(bytes, limits)?;
    decode_probed(bytes, &header, None)
}

/// Decodes an image whose header was probed, within `reserved` (if any):
/// the reservation shrinks to the RGB8 image once the native buffer is gone.
fn decode_probed(
    bytes: &[u8],
    header: &Header,
    mut reserved: Option<DecodePermit>,
) -> Result<DecodedImage, ImageError> {
    let (width, height) = (header.width, header.height);
    let mut decoder = reader(bytes, header.format)
        .into_decoder()
        .map_err(corrupt)?;
    if decoder.dimensions() != (width, height) || decoder.color_type() != header.color {
        return Err(ImageError::Corrupt(
            "the header changed between reads".into(),
        ));
    }
    let mut decoder_limits = Limits::default();
    decoder_limits.max_image_width = Some(width);
    decoder_limits.max_image_height = Some(height);
    // RGBA8 at the declared size plus slack for the decoder's own buffers.
    decoder_limits.max_alloc = Some(header.pixels() * 8 + (64 << 20));
    decoder
        .set_limits(decoder_limits)
        .map_err(|e| ImageError::TooLarge(e.to_string()))?;
    let len = usize::try_from(decoder.total_bytes())
        .map_err(|_| ImageError::TooLarge("does not fit in memory".into()))?;
    let mut native = vec![0u8; len];
    decoder.read_image(&mut native).map_err(corrupt)?;
    let rgb = pixels::to_rgb8(native, header.color, width, height)?;
    let (width, height, rgb) = pixels::orient(rgb, width, height, header.orientation)?;
    if let Some(permit) = reserved.as_mut() {
        permit.shrink_to(rgb.len() as u64);
    }
    Ok(DecodedImage {
        width,
        height,
        rgb,
        _reserved: reserved.map(Arc::new),
    })
}

/// Image intake for a server: the limits plus one decode budget shared by
/// every decode of the process. Build it once (the worker's `Processor`, a
/// CLI command) and share it; clones share the budget.
#[derive(Debug, Clone)]
pub struct Intake {
    limits: ImageSettings,
    budget: DecodeBudget,
}

impl Intake {
    pub fn new(limits: &ImageSettings) -> Intake {
        Intake {
            limits: limits.clone(),
            budget: DecodeBudget::new(limits.decode_budget_bytes),
        }
    }

    pub fn limits(&self) -> &ImageSettings {
        &self.limits
    }

    pub fn budget(&self) -> &DecodeBudget {
        &self.budget
    }

    /// Decodes on blocking threads (image decoding is CPU work) within the
    /// budget, and times it (waiting for room included). `bytes` are shared,
    /// not copied: the worker keeps them for the image store.
    pub async fn decode(&self, bytes: Arc<Vec<u8>>) -> (Result<DecodedImage, ImageError>, f64) {
        let started = Instant::now();
        let result = self.decode_budgeted(bytes).await;
        (result, started.elapsed().as_secs_f64() * 1000.0)
    }

    async fn decode_budgeted(&self, bytes: Arc<Vec<u8>>) -> Result<DecodedImage, ImageError> {
        // The header is read off the async threads too: a PNG's metadata
        // chunks before the first IDAT can be megabytes.
        let (shared, limits) = (bytes.clone(), self.limits.clone());
        let header = blocking(move || probe(&shared, &limits)).await?;
        // Waits here, on the async side, holding no thread.
        let permit = self.budget.acquire(header.peak_bytes()).await;
        // A panic drops the permit as it unwinds: the budget is given back.
        blocking(move || decode_probed(&bytes, &header, Some(permit))).await
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, ImageError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(ImageError::Corrupt(format!("decoder panicked: {e}"))))
}

#[cfg(test)]
mod tests;
