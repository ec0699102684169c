//! From a decoder's native buffer to packed, oriented RGB8, holding as little
//! as possible at once. A 40 MP 16-bit PNG is 240 MB native; converting it
//! the usual way (`DynamicImage::into_rgb8`) allocates the 120 MB RGB8 image
//! beside it. Here a native pixel at least as wide as RGB8 is converted in
//! place, a run of pixels at a time, and the buffer is then shrunk, so the
//! native buffer is the peak and is gone as soon as conversion ends.

use image::metadata::Orientation;
use image::{ColorType, DynamicImage, ImageBuffer, RgbImage};

use super::probe::RGB8;
use super::ImageError;

/// Pixels converted per step of the in-place conversion (a few hundred KB).
const RUN: usize = 1 << 16;

/// Converts `native` (`color` pixels, `width` x `height`) into RGB8 with the
/// image crate's own conversion, so results equal `DynamicImage::into_rgb8`.
pub(super) fn to_rgb8(
    mut native: Vec<u8>,
    color: ColorType,
    width: u32,
    height: u32,
) -> Result<Vec<u8>, ImageError> {
    let bpp = usize::from(color.bytes_per_pixel());
    let pixels = width as usize * height as usize;
    if native.len() != pixels * bpp {
        return Err(ImageError::Corrupt(format!(
            "the decoder returned {} bytes for {width}x{height} {color:?}",
            native.len()
        )));
    }
    if color == ColorType::Rgb8 {
        return Ok(native);
    }
    if bpp < RGB8 as usize {
        // Grey widens: no room in place; a new RGB8 buffer beside the
        // (smaller) native one, filled a run at a time.
        let mut rgb = vec![0u8; pixels * 3];
        convert_runs(&native, color, bpp, pixels, &mut rgb)?;
        return Ok(rgb);
    }
    // Each run's output lands at or before where its input started
    // (3 * i <= bpp * i), and the run's input is copied out before the
    // output is written, so no pixel is overwritten before it is read.
    let mut start = 0;
    while start < pixels {
        let n = RUN.min(pixels - start);
        let rgb = run_to_rgb8(color, &native[start * bpp..(start + n) * bpp])?;
        native[start * 3..(start + n) * 3].copy_from_slice(&rgb);
        start += n;
    }
    native.truncate(pixels * 3);
    // Gives the tail back: for a large buffer this is an in-place `mremap`.
    native.shrink_to_fit();
    Ok(native)
}

fn convert_runs(
    native: &[u8],
    color: ColorType,
    bpp: usize,
    pixels: usize,
    rgb: &mut [u8],
) -> Result<(), ImageError> {
    let mut start = 0;
    while start < pixels {
        let n = RUN.min(pixels - start);
        let out = run_to_rgb8(color, &native[start * bpp..(start + n) * bpp])?;
        rgb[start * 3..(start + n) * 3].copy_from_slice(&out);
        start += n;
    }
    Ok(())
}

/// One run of native pixels (a 1-pixel-high image) in RGB8.
fn run_to_rgb8(color: ColorType, native: &[u8]) -> Result<Vec<u8>, ImageError> {
    let n = native.len() / usize::from(color.bytes_per_pixel());
    let width = u32::try_from(n).map_err(|_| mismatch())?;
    Ok(dynamic(color, width, 1, native)?.into_rgb8().into_raw())
}

/// Applies the EXIF orientation to an RGB8 image.
pub(super) fn orient(
    rgb: Vec<u8>,
    width: u32,
    height: u32,
    orientation: Option<Orientation>,
) -> Result<(u32, u32, Vec<u8>), ImageError> {
    let Some(orientation) = orientation.filter(|o| *o != Orientation::NoTransforms) else {
        return Ok((width, height, rgb));
    };
    let image = RgbImage::from_raw(width, height, rgb).ok_or_else(mismatch)?;
    let mut image = DynamicImage::ImageRgb8(image);
    image.apply_orientation(orientation);
    let rgb = image.into_rgb8();
    let (width, height) = rgb.dimensions();
    Ok((width, height, rgb.into_raw()))
}

/// A `DynamicImage` over a copy of `bytes`, native-endian samples as the
/// decoder wrote them.
fn dynamic(
    color: ColorType,
    width: u32,
    height: u32,
    bytes: &[u8],
) -> Result<DynamicImage, ImageError> {
    fn u16s(bytes: &[u8]) -> Vec<u16> {
        bytes
            .chunks_exact(2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
            .collect()
    }
    fn f32s(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
    let (w, h) = (width, height);
    let image = match color {
        ColorType::L8 => ImageBuffer::from_raw(w, h, bytes.to_vec()).map(DynamicImage::ImageLuma8),
        ColorType::La8 => {
            ImageBuffer::from_raw(w, h, bytes.to_vec()).map(DynamicImage::ImageLumaA8)
        }
        ColorType::Rgb8 => ImageBuffer::from_raw(w, h, bytes.to_vec()).map(DynamicImage::ImageRgb8),
        ColorType::Rgba8 => {
            ImageBuffer::from_raw(w, h, bytes.to_vec()).map(DynamicImage::ImageRgba8)
        }
        ColorType::L16 => ImageBuffer::from_raw(w, h, u16s(bytes)).map(DynamicImage::ImageLuma16),
        ColorType::La16 => ImageBuffer::from_raw(w, h, u16s(bytes)).map(DynamicImage::ImageLumaA16),
        ColorType::Rgb16 => ImageBuffer::from_raw(w, h, u16s(bytes)).map(DynamicImage::ImageRgb16),
        ColorType::Rgba16 => {
            ImageBuffer::from_raw(w, h, u16s(bytes)).map(DynamicImage::ImageRgba16)
        }
        ColorType::Rgb32F => {
            ImageBuffer::from_raw(w, h, f32s(bytes)).map(DynamicImage::ImageRgb32F)
        }
        ColorType::Rgba32F => {
            ImageBuffer::from_raw(w, h, f32s(bytes)).map(DynamicImage::ImageRgba32F)
        }
        other => {
            return Err(ImageError::UnsupportedFormat(format!(
                "pixel layout {other:?}"
            )))
        }
    };
    image.ok_or_else(mismatch)
}

fn mismatch() -> ImageError {
    ImageError::Corrupt("decoded buffer does not match the declared size".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Native bytes of every layout, with values that exercise rounding.
    fn native(color: ColorType, pixels: usize) -> Vec<u8> {
        (0..pixels * usize::from(color.bytes_per_pixel()))
            .map(|i| (i * 37 % 251) as u8)
            .collect()
    }

    #[test]
    fn in_place_conversion_equals_the_image_crates() {
        // Wider than one run, not a multiple of it.
        let (w, h) = (700u32, 200u32);
        for color in [
            ColorType::L8,
            ColorType::La8,
            ColorType::Rgb8,
            ColorType::Rgba8,
            ColorType::L16,
            ColorType::La16,
            ColorType::Rgb16,
            ColorType::Rgba16,
        ] {
            let bytes = native(color, (w * h) as usize);
            let expected = dynamic(color, w, h, &bytes).unwrap().into_rgb8().into_raw();
            let got = to_rgb8(bytes, color, w, h).unwrap();
            assert_eq!(got.len(), (w * h * 3) as usize, "{color:?}");
            assert!(got == expected, "{color:?} differs from into_rgb8");
        }
    }

    #[test]
    fn a_buffer_of_the_wrong_size_is_corrupt() {
        let err = to_rgb8(vec![0; 10], ColorType::Rgb16, 4, 4).unwrap_err();
        assert_eq!(err.kind(), "corrupt");
    }

    #[test]
    fn a_quarter_turn_swaps_the_sides() {
        let rgb: Vec<u8> = (0..4 * 2 * 3).map(|i| i as u8).collect();
        let (w, h, out) = orient(rgb.clone(), 4, 2, Some(Orientation::Rotate90)).unwrap();
        assert_eq!((w, h, out.len()), (2, 4, rgb.len()));
        let (w, h, out) = orient(rgb.clone(), 4, 2, None).unwrap();
        assert_eq!((w, h), (4, 2));
        assert_eq!(out, rgb);
    }
}
