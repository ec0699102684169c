//! The generated pictures every benchmark feeds: deterministic 256x256
//! patterns, different per index, so runs compare without shipping images.

use crate::intake::{decode_image, DecodedImage};
use crate::settings::ImageSettings;

/// `n` pictures as PNG bytes, as a request would carry them.
pub(super) fn pngs(n: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    (0..n as u32)
        .map(|i| {
            let img = picture(i);
            let mut png = std::io::Cursor::new(Vec::new());
            img.write_to(&mut png, image::ImageFormat::Png)?;
            Ok(png.into_inner())
        })
        .collect()
}

/// `n` pictures through the intake's decoder, as the engine receives them.
pub(super) fn decoded(n: usize, limits: &ImageSettings) -> anyhow::Result<Vec<DecodedImage>> {
    let mut out = Vec::with_capacity(n);
    for png in pngs(n)? {
        out.push(decode_image(&png, limits)?);
    }
    Ok(out)
}

fn picture(i: u32) -> image::RgbImage {
    image::RgbImage::from_fn(256, 256, |x, y| {
        image::Rgb([
            (x ^ (i * 40)) as u8,
            (y + i * 13) as u8,
            ((x * y) >> 6) as u8 ^ i as u8,
        ])
    })
}
