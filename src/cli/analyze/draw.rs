//! What `dfa analyze --annotate` draws: each face's box, coloured by its
//! label (fake red, real green), with "#index label p_fake" on a filled tag
//! above it; a caption when no face was found. Pure: pixels in, pixels out,
//! so the tests read pixels back. Text is font8x8's public-domain 8×8 glyphs
//! scaled up, so nothing depends on font files on the machine.

use font8x8::legacy::BASIC_LEGACY;
use image::{Rgb, RgbImage};

use crate::domain::{BBox, FaceMode, Label, Verdict, VerdictStatus};

pub const FAKE: Rgb<u8> = Rgb([225, 30, 30]);
pub const REAL: Rgb<u8> = Rgb([0, 170, 60]);
/// Text on the tags and the caption.
pub const INK: Rgb<u8> = Rgb([255, 255, 255]);
/// The caption's background (no face).
pub const CAPTION: Rgb<u8> = Rgb([20, 20, 20]);

/// Sizes scaled to the picture, so that a tag stays legible on a 4000 px
/// upload and does not cover a 256 px one.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Style {
    /// Outline thickness, pixels.
    line: u32,
    /// Glyph pixels per font pixel (8×8 glyphs).
    text: u32,
}

impl Style {
    fn for_size(width: u32, height: u32) -> Style {
        let longest = width.max(height);
        Style {
            line: (longest / 400).clamp(2, 12),
            text: (longest / 500).clamp(2, 8),
        }
    }

    fn pad(&self) -> u32 {
        self.text * 2
    }

    /// A tag's size for `text`: the glyphs and the padding around them.
    fn tag_size(&self, text: &str) -> (u32, u32) {
        let chars = text.chars().count() as u32;
        (
            chars * 8 * self.text + 2 * self.pad(),
            8 * self.text + 2 * self.pad(),
        )
    }
}

pub fn colour_of(label: Label) -> Rgb<u8> {
    match label {
        Label::Fake => FAKE,
        Label::Real => REAL,
    }
}

/// The tag drawn on a face: "#0 fake 0.93".
pub fn tag_text(index: u32, label: Label, p_fake: f32) -> String {
    format!("#{index} {} {p_fake:.2}", label.as_str())
}

/// The caption of an image without a face box; None when nothing is said
/// (`faces.mode = "off"`: the image is the face, there is no box to draw).
pub fn caption_of(verdict: &Verdict) -> Option<String> {
    if verdict.face_mode == FaceMode::Off || !verdict.faces.is_empty() {
        return None;
    }
    Some(match (verdict.status, verdict.label, verdict.p_fake) {
        (VerdictStatus::Analysed, Some(label), Some(p)) => {
            format!("no face - whole image {} {p:.2}", label.as_str())
        }
        _ => "no face".to_string(),
    })
}

/// `image` with `verdict`'s faces drawn on it. Boxes are in the image's
/// pixels (the verdict's), so `image` must be the oriented decode the
/// verdict was made from.
pub fn annotate(mut image: RgbImage, verdict: &Verdict) -> RgbImage {
    let style = Style::for_size(image.width(), image.height());
    if verdict.face_mode != FaceMode::Off {
        for face in &verdict.faces {
            let colour = colour_of(face.label);
            outline(&mut image, face.bbox, style.line, colour);
            let text = tag_text(face.index, face.label, face.p_fake);
            tag_above(&mut image, face.bbox, &text, colour, style);
        }
    }
    if let Some(caption) = caption_of(verdict) {
        let (w, h) = style.tag_size(&caption);
        let at = (i64::from(style.pad()), i64::from(style.pad()));
        tag(&mut image, at, (w, h), &caption, CAPTION, style);
    }
    image
}

/// A `thickness`-pixel frame on the inside of `b`, so its edge pixels are
/// the box's own.
fn outline(image: &mut RgbImage, b: BBox, thickness: u32, colour: Rgb<u8>) {
    let t = thickness.min(b.w.div_ceil(2)).min(b.h.div_ceil(2));
    let (x, y) = (i64::from(b.x), i64::from(b.y));
    let (right, bottom) = (
        x + i64::from(b.w) - i64::from(t),
        y + i64::from(b.h) - i64::from(t),
    );
    fill(image, (x, y), (b.w, t), colour);
    fill(image, (x, bottom), (b.w, t), colour);
    fill(image, (x, y), (t, b.h), colour);
    fill(image, (right, y), (t, b.h), colour);
}

/// The tag sits on the box's top edge, outside it when there is room above,
/// inside it otherwise; moved left to stay within the image.
fn tag_above(image: &mut RgbImage, b: BBox, text: &str, colour: Rgb<u8>, style: Style) {
    let (w, h) = style.tag_size(text);
    let y = if b.y >= h {
        i64::from(b.y - h)
    } else {
        i64::from(b.y)
    };
    let x = i64::from(b.x.min(image.width().saturating_sub(w)));
    tag(image, (x, y), (w, h), text, colour, style);
}

fn tag(
    image: &mut RgbImage,
    at: (i64, i64),
    size: (u32, u32),
    text: &str,
    background: Rgb<u8>,
    style: Style,
) {
    fill(image, at, size, background);
    let pad = i64::from(style.pad());
    text_at(image, (at.0 + pad, at.1 + pad), text, INK, style.text);
}

/// `text` in 8×8 glyphs scaled by `scale`; characters outside ASCII as '?'.
fn text_at(image: &mut RgbImage, at: (i64, i64), text: &str, ink: Rgb<u8>, scale: u32) {
    let s = i64::from(scale);
    for (i, c) in text.chars().enumerate() {
        let glyph = BASIC_LEGACY
            .get(c as usize)
            .copied()
            .unwrap_or(BASIC_LEGACY[usize::from(b'?')]);
        let left = at.0 + i as i64 * 8 * s;
        for (row, bits) in (0i64..).zip(glyph) {
            for col in 0..8i64 {
                // Bit 0 is the glyph's leftmost pixel.
                if bits >> col & 1 == 1 {
                    fill(image, (left + col * s, at.1 + row * s), (scale, scale), ink);
                }
            }
        }
    }
}

/// Fills a rectangle, clipped to the image.
fn fill(image: &mut RgbImage, at: (i64, i64), size: (u32, u32), colour: Rgb<u8>) {
    let (iw, ih) = (i64::from(image.width()), i64::from(image.height()));
    let x0 = at.0.clamp(0, iw);
    let y0 = at.1.clamp(0, ih);
    let x1 = (at.0 + i64::from(size.0)).clamp(0, iw);
    let y1 = (at.1 + i64::from(size.1)).clamp(0, ih);
    for y in y0..y1 {
        for x in x0..x1 {
            // In bounds: clamped to the image's size above.
            image.put_pixel(x as u32, y as u32, colour);
        }
    }
}

#[cfg(test)]
mod tests;
