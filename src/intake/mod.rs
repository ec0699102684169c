//! Image intake: bytes in, a validated RGB image out, or a typed error.
//!
//! Limits on encoded bytes and on the pixel count declared in the header are
//! checked before anything is decoded, so a decompression bomb never allocates.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Instant;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use crate::settings::ImageSettings;

/// A decoded, oriented RGB8 image that passed every intake check.
#[derive(Clone)]
pub struct DecodedImage {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
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

const ACCEPTED: [ImageFormat; 5] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::WebP,
    ImageFormat::Gif,
    ImageFormat::Bmp,
];

/// Decodes `bytes` into an RGB image, applying the EXIF orientation.
pub fn decode_image(bytes: &[u8], limits: &ImageSettings) -> Result<DecodedImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    if bytes.len() as u64 > limits.max_bytes {
        return Err(ImageError::TooLarge(format!(
            "{} bytes encoded, the limit is {}",
            bytes.len(),
            limits.max_bytes
        )));
    }
    let format = image::guess_format(bytes).map_err(|_| {
        ImageError::UnsupportedFormat("not a JPEG, PNG, WebP, GIF or BMP file".into())
    })?;
    if !ACCEPTED.contains(&format) {
        return Err(ImageError::UnsupportedFormat(format!("{format:?}")));
    }
    if format == ImageFormat::Jpeg && !jpeg_has_end_marker(bytes) {
        // zune-jpeg fills a truncated scan with grey instead of failing; a
        // half-grey face would get a confident, meaningless verdict.
        return Err(ImageError::Corrupt(
            "truncated JPEG (no end-of-image marker)".into(),
        ));
    }

    let (width, height) = reader(bytes, format).into_dimensions().map_err(corrupt)?;
    check_dimensions(width, height, limits)?;

    let mut decoder = reader(bytes, format).into_decoder().map_err(corrupt)?;
    let mut decoder_limits = Limits::default();
    decoder_limits.max_image_width = Some(width);
    decoder_limits.max_image_height = Some(height);
    // RGBA8 at the declared size plus slack for the decoder's own buffers.
    decoder_limits.max_alloc = Some(u64::from(width) * u64::from(height) * 8 + (64 << 20));
    decoder.set_limits(decoder_limits).map_err(too_large)?;
    let orientation = decoder.orientation().ok();
    let mut image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    if let Some(orientation) = orientation {
        image.apply_orientation(orientation);
    }
    let rgb = image.into_rgb8();
    let (width, height) = rgb.dimensions();
    Ok(DecodedImage {
        width,
        height,
        rgb: rgb.into_raw(),
    })
}

fn reader(bytes: &[u8], format: ImageFormat) -> ImageReader<Cursor<&[u8]>> {
    ImageReader::with_format(Cursor::new(bytes), format)
}

fn check_dimensions(width: u32, height: u32, limits: &ImageSettings) -> Result<(), ImageError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(ImageError::TooLarge(format!(
            "{width}x{height} = {pixels} pixels, the limit is {}",
            limits.max_pixels
        )));
    }
    if width < limits.min_side || height < limits.min_side {
        return Err(ImageError::TooSmall {
            width,
            height,
            min_side: limits.min_side,
        });
    }
    Ok(())
}

/// A complete JPEG ends with EOI (FF D9), possibly followed by padding.
fn jpeg_has_end_marker(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(512)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

fn corrupt(err: image::ImageError) -> ImageError {
    match err {
        image::ImageError::Limits(e) => ImageError::TooLarge(e.to_string()),
        image::ImageError::Unsupported(e) => ImageError::UnsupportedFormat(e.to_string()),
        other => ImageError::Corrupt(other.to_string()),
    }
}

fn too_large(err: image::ImageError) -> ImageError {
    ImageError::TooLarge(err.to_string())
}

/// Decodes on a blocking thread (image decoding is CPU work) and times it.
/// `bytes` are shared, not copied: the worker keeps them for the image store.
pub async fn decode_off_thread(
    bytes: Arc<Vec<u8>>,
    limits: ImageSettings,
) -> (Result<DecodedImage, ImageError>, f64) {
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || decode_image(&bytes, &limits))
        .await
        .unwrap_or_else(|e| Err(ImageError::Corrupt(format!("decoder panicked: {e}"))));
    (result, started.elapsed().as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, RgbImage};

    fn limits() -> ImageSettings {
        ImageSettings {
            max_bytes: 1 << 20,
            max_pixels: 4_000_000,
            min_side: 16,
            decode_budget_bytes: 1 << 30,
        }
    }

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 99]))
    }

    fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn every_accepted_format_decodes_to_rgb() {
        let img = gradient(40, 30);
        for format in [
            ImageFormat::Png,
            ImageFormat::Jpeg,
            ImageFormat::Bmp,
            ImageFormat::Gif,
            ImageFormat::WebP,
        ] {
            let decoded = decode_image(&encode(&img, format), &limits())
                .unwrap_or_else(|e| panic!("{format:?}: {e}"));
            assert_eq!((decoded.width(), decoded.height()), (40, 30), "{format:?}");
            assert_eq!(decoded.rgb().len(), 40 * 30 * 3);
        }
    }

    #[test]
    fn lossless_png_keeps_its_pixels() {
        let img = gradient(20, 20);
        let decoded = decode_image(&encode(&img, ImageFormat::Png), &limits()).unwrap();
        assert_eq!(decoded.rgb(), img.as_raw().as_slice());
    }

    #[test]
    fn empty_and_text_are_rejected() {
        assert_eq!(decode_image(&[], &limits()).unwrap_err(), ImageError::Empty);
        let err = decode_image(b"this is not a picture at all", &limits()).unwrap_err();
        assert_eq!(err.kind(), "unsupported_format");
    }

    #[test]
    fn truncated_images_are_corrupt() {
        let jpeg = encode(&gradient(64, 64), ImageFormat::Jpeg);
        let err = decode_image(&jpeg[..jpeg.len() / 2], &limits()).unwrap_err();
        assert_eq!(err.kind(), "corrupt", "{err}");
        let png = encode(&gradient(64, 64), ImageFormat::Png);
        let err = decode_image(&png[..png.len() / 2], &limits()).unwrap_err();
        assert_eq!(err.kind(), "corrupt", "{err}");
    }

    #[test]
    fn header_claiming_huge_size_is_rejected_before_decoding() {
        let bomb = huge_png_header(50_000, 50_000);
        let err = decode_image(&bomb, &limits()).unwrap_err();
        assert_eq!(err.kind(), "too_large", "{err}");
        assert!(err.to_string().contains("50000x50000"), "{err}");
    }

    #[test]
    fn tiny_and_oversized_inputs_are_rejected() {
        let err = decode_image(&encode(&gradient(1, 1), ImageFormat::Png), &limits()).unwrap_err();
        assert!(
            matches!(
                err,
                ImageError::TooSmall {
                    width: 1,
                    height: 1,
                    ..
                }
            ),
            "{err}"
        );
        let small_limit = ImageSettings {
            max_bytes: 10,
            ..limits()
        };
        let err =
            decode_image(&encode(&gradient(32, 32), ImageFormat::Png), &small_limit).unwrap_err();
        assert_eq!(err.kind(), "too_large");
    }

    #[test]
    fn exif_orientation_is_applied() {
        // A 40x20 JPEG tagged "rotate 90° CW" must come out 20x40.
        let jpeg = encode(&gradient(40, 20), ImageFormat::Jpeg);
        let tagged = insert_exif_orientation(&jpeg, 6);
        let decoded = decode_image(&tagged, &limits()).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (20, 40));
    }

    /// A PNG whose IHDR declares `w`x`h`, followed by a tiny IDAT: cheap to
    /// send, ruinous to decode.
    pub(crate) fn huge_png_header(w: u32, h: u32) -> Vec<u8> {
        let mut small = Cursor::new(Vec::new());
        image::codecs::png::PngEncoder::new(&mut small)
            .write_image(&[0u8; 3 * 16 * 16], 16, 16, image::ExtendedColorType::Rgb8)
            .unwrap();
        let mut bytes = small.into_inner();
        // IHDR data starts at offset 16 (8 signature + 4 length + 4 type).
        bytes[16..20].copy_from_slice(&w.to_be_bytes());
        bytes[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32fast::hash(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    /// Inserts an APP1 EXIF segment holding only the Orientation tag after SOI.
    fn insert_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
        let mut tiff = Vec::new();
        tiff.extend_from_slice(b"MM\x00\x2a\x00\x00\x00\x08"); // big-endian TIFF, IFD at 8
        tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
        tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
        tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
        tiff.extend_from_slice(&1u32.to_be_bytes()); // count
        tiff.extend_from_slice(&orientation.to_be_bytes());
        tiff.extend_from_slice(&[0, 0]);
        tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
        let mut app1 = b"Exif\x00\x00".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }
}
