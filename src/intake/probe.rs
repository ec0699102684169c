//! Everything intake learns from an image's header, before a pixel is
//! decoded: format, declared size, native pixel layout, orientation, and from
//! those the memory its decode will need at its peak.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{ColorType, ImageDecoder, ImageFormat, ImageReader};

use super::ImageError;
use crate::settings::ImageSettings;

const ACCEPTED: [ImageFormat; 5] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::WebP,
    ImageFormat::Gif,
    ImageFormat::Bmp,
];

/// RGB8, what the engine takes.
pub(super) const RGB8: u64 = 3;

/// What the header declares, checked against the intake limits.
#[derive(Debug, Clone)]
pub(super) struct Header {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    /// The decoder's native output layout.
    pub color: ColorType,
    pub orientation: Option<Orientation>,
    /// A progressive JPEG keeps every DCT coefficient until its last scan.
    pub progressive: bool,
}

impl Header {
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// Bytes the decode holds at its peak, from `pixels::to_rgb8`'s and
    /// `pixels::orient`'s steps:
    /// - decoding: the native buffer plus the decoder's own full-size scratch;
    /// - converting: in place when a native pixel is at least as wide as RGB8
    ///   (RGBA8, LA16, RGB16, RGBA16), else the native buffer plus a new RGB8 one;
    /// - orienting: a quarter turn copies the RGB8 image once.
    pub fn peak_bytes(&self) -> u64 {
        let native = u64::from(self.color.bytes_per_pixel());
        let convert = if native >= RGB8 { 0 } else { RGB8 };
        // The scratch is freed before conversion starts, hence `max`.
        let decode = native + self.decoder_scratch().max(convert);
        let orient = if self.orientation.is_some_and(turns) {
            2 * RGB8
        } else {
            RGB8
        };
        self.pixels() * decode.max(orient)
    }

    /// Per-pixel bytes a decoder allocates beside the output buffer: zune-jpeg
    /// keeps i16 coefficients of up to 3 components for a progressive JPEG;
    /// image-webp decodes lossy frames through YUV planes (1.5 bytes) and an
    /// alpha plane; the GIF decoder composes the first frame in an RGBA
    /// buffer. PNG and BMP decode row by row into the output.
    fn decoder_scratch(&self) -> u64 {
        match self.format {
            ImageFormat::Jpeg if self.progressive => 6,
            ImageFormat::WebP => 3,
            ImageFormat::Gif => 4,
            _ => 0,
        }
    }
}

/// Orientations that swap width and height, which `apply_orientation` does
/// by copying into a new buffer (the others flip in place).
fn turns(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// Reads and checks the header of `bytes`. Allocates nothing per pixel.
pub(super) fn probe(bytes: &[u8], limits: &ImageSettings) -> Result<Header, ImageError> {
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

    let mut decoder = reader(bytes, format).into_decoder().map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    let color = decoder.color_type();
    let orientation = decoder.orientation().ok();
    Ok(Header {
        format,
        width,
        height,
        color,
        orientation,
        progressive: format == ImageFormat::Jpeg && jpeg_is_progressive(bytes),
    })
}

pub(super) fn reader(bytes: &[u8], format: ImageFormat) -> ImageReader<Cursor<&[u8]>> {
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

/// A progressive frame header (SOF2) anywhere. Entropy-coded data never holds
/// FF C2 (an FF there is followed by 00 or a restart marker); an embedded
/// thumbnail may, which only makes the estimate safer.
fn jpeg_is_progressive(bytes: &[u8]) -> bool {
    bytes.windows(2).any(|w| w == [0xFF, 0xC2])
}

pub(super) fn corrupt(err: image::ImageError) -> ImageError {
    match err {
        image::ImageError::Limits(e) => ImageError::TooLarge(e.to_string()),
        image::ImageError::Unsupported(e) => ImageError::UnsupportedFormat(e.to_string()),
        other => ImageError::Corrupt(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(color: ColorType, orientation: Option<Orientation>) -> Header {
        Header {
            format: ImageFormat::Png,
            width: 100,
            height: 10,
            color,
            orientation,
            progressive: false,
        }
    }

    #[test]
    fn peak_covers_the_native_buffer_and_conversion_copies() {
        // 16-bit RGB converts in place: the native buffer is the peak.
        assert_eq!(header(ColorType::Rgb16, None).peak_bytes(), 1000 * 6);
        assert_eq!(header(ColorType::Rgba16, None).peak_bytes(), 1000 * 8);
        assert_eq!(header(ColorType::Rgb8, None).peak_bytes(), 1000 * 3);
        // Grey expands into a new RGB8 buffer beside the native one.
        assert_eq!(header(ColorType::L8, None).peak_bytes(), 1000 * 4);
        assert_eq!(header(ColorType::L16, None).peak_bytes(), 1000 * 5);
        assert_eq!(header(ColorType::La16, None).peak_bytes(), 1000 * 4);
        // A quarter turn copies the RGB8 image; a flip does not.
        let turned = header(ColorType::Rgb8, Some(Orientation::Rotate90));
        assert_eq!(turned.peak_bytes(), 1000 * 6);
        let flipped = header(ColorType::Rgb8, Some(Orientation::FlipHorizontal));
        assert_eq!(flipped.peak_bytes(), 1000 * 3);
    }

    #[test]
    fn progressive_jpeg_counts_its_coefficients() {
        let mut h = header(ColorType::Rgb8, None);
        h.format = ImageFormat::Jpeg;
        assert_eq!(h.peak_bytes(), 1000 * 3);
        h.progressive = true;
        assert_eq!(h.peak_bytes(), 1000 * 9);
    }
}
