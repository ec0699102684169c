//! The crop DFA-GPT sees: a square around the face, enlarged by a margin
//! (forehead, chin and the blending boundary are where forgeries show),
//! kept inside the image.

use image::{imageops, ImageBuffer, Rgb, RgbImage};

use super::FaceBox;
use crate::domain::CropSquare;

/// The square of side `max(w, h) * margin` centred on `face`, shifted (not
/// shrunk) to fit the image, and shrunk only when the image is smaller.
pub fn square_around(face: &FaceBox, width: u32, height: u32, margin: f32) -> CropSquare {
    let side = (face.w.max(face.h) as f32 * margin.max(1.0)).round() as u32;
    let side = side.clamp(1, width.min(height).max(1));
    let cx = face.x as f32 + face.w as f32 / 2.0;
    let cy = face.y as f32 + face.h as f32 / 2.0;
    let place = |centre: f32, extent: u32| -> u32 {
        let start = (centre - side as f32 / 2.0).round().max(0.0) as u32;
        start.min(extent.saturating_sub(side))
    };
    CropSquare {
        x: place(cx, width),
        y: place(cy, height),
        side,
    }
}

/// The square crop around `face`, resized to `size`×`size`.
pub fn crop_square(image: &RgbImage, face: &FaceBox, margin: f32, size: u32) -> RgbImage {
    let square = square_around(face, image.width(), image.height(), margin);
    let view = ImageBuffer::from_raw(image.width(), image.height(), image.as_raw().as_slice());
    match view {
        Some(view) => crop_to(&view, square, size),
        None => RgbImage::new(size, size),
    }
}

/// `square` of `image` (clamped to it), resized to `size`×`size`.
pub fn crop_to(image: &ImageBuffer<Rgb<u8>, &[u8]>, square: CropSquare, size: u32) -> RgbImage {
    let x = square.x.min(image.width().saturating_sub(1));
    let y = square.y.min(image.height().saturating_sub(1));
    let side = square
        .side
        .min(image.width() - x)
        .min(image.height() - y)
        .max(1);
    let view = imageops::crop_imm(image, x, y, side, side);
    if side > size {
        // Box-averaged down from the image itself: no full-size copy of a
        // large face and no float buffer of its size.
        return imageops::thumbnail(&*view, size, size);
    }
    // Copied out pixel by pixel: `crop_imm(..).to_image()` wants an image
    // that owns its buffer, and this one borrows the decoded pixels.
    let view = RgbImage::from_fn(side, side, |px, py| *image.get_pixel(x + px, y + py));
    if side == size {
        view
    } else {
        imageops::resize(&view, size, size, imageops::FilterType::CatmullRom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: u32, y: u32, w: u32, h: u32) -> FaceBox {
        FaceBox {
            x,
            y,
            w,
            h,
            score: 10.0,
        }
    }

    fn sq(x: u32, y: u32, side: u32) -> CropSquare {
        CropSquare { x, y, side }
    }

    #[test]
    fn a_face_in_the_middle_gets_its_margin_on_every_side() {
        assert_eq!(
            square_around(&face(400, 300, 100, 100), 1000, 800, 1.3),
            sq(385, 285, 130)
        );
    }

    #[test]
    fn a_face_at_the_edge_is_shifted_inside_not_shrunk() {
        assert_eq!(
            square_around(&face(0, 0, 100, 100), 1000, 800, 1.3),
            sq(0, 0, 130)
        );
        assert_eq!(
            square_around(&face(950, 750, 50, 50), 1000, 800, 2.0),
            sq(900, 700, 100)
        );
    }

    #[test]
    fn a_crop_never_outgrows_a_small_image() {
        assert_eq!(
            square_around(&face(10, 10, 80, 60), 100, 90, 1.5),
            sq(5, 0, 90)
        );
    }

    #[test]
    fn crops_come_out_at_the_asked_size() {
        let img = RgbImage::from_pixel(300, 200, image::Rgb([9, 9, 9]));
        let c = crop_square(&img, &face(100, 50, 60, 80), 1.3, 224);
        assert_eq!(c.dimensions(), (224, 224));
    }
}
