//! The image preprocessing mtmd applies for a LLaVA-1.5 "mlp" projector
//! (`mtmd_image_preprocessor_fixed_size` in llama.cpp's tools/mtmd): an
//! aspect-preserving Pillow-compatible bicubic resize into the tower's square
//! input, padded with LLaVA's mean colour, then `x / 255` and `(x - mean) / std`
//! per channel. Ported operation for operation (fixed-point weights included)
//! so the pixels the candle tower sees are the bytes mtmd feeds its own.

/// LLaVA's pad colour (clip.cpp's `image_pad_color` for the llava projectors).
pub const PAD_COLOR: [u8; 3] = [122, 116, 104];

/// Pillow's fixed-point precision: 32 bits − 8 (pixel) − 2 (headroom).
const PRECISION_BITS: u32 = 22;

/// RGB8 row-major `src` (w × h) into a `size` × `size` RGB8 image: resized
/// to fit (rounding the scaled edges up), centred, the rest `pad`.
pub fn resize_pad(src: &[u8], w: usize, h: usize, size: usize, pad: [u8; 3]) -> Vec<u8> {
    if w == size && h == size {
        return src.to_vec();
    }
    // f32 as in img_tool::resize, so the rounding of the new edges matches.
    let scale = (size as f32 / w as f32).min(size as f32 / h as f32);
    let new_w = ((w as f32 * scale).ceil() as usize).min(size);
    let new_h = ((h as f32 * scale).ceil() as usize).min(size);
    let resized = resize_bicubic(src, w, h, new_w, new_h);
    let mut dst: Vec<u8> = pad.iter().copied().cycle().take(size * size * 3).collect();
    let (ox, oy) = ((size - new_w) / 2, (size - new_h) / 2);
    for y in 0..new_h {
        let from = &resized[y * new_w * 3..(y + 1) * new_w * 3];
        let at = ((y + oy) * size + ox) * 3;
        dst[at..at + new_w * 3].copy_from_slice(from);
    }
    dst
}

/// Bicubic filter with Pillow's a = −0.5 (not PyTorch's −0.75).
fn bicubic(x: f64) -> f64 {
    let x = x.abs();
    let a = -0.5;
    if x < 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * a
    } else {
        0.0
    }
}

/// Per output pixel: first input index, count, and fixed-point weights.
struct Taps {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

fn taps(in_size: usize, out_size: usize) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let fxp = f64::from(1u32 << PRECISION_BITS);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C's (int) cast truncates toward zero, as `as` does.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let count = xmax.saturating_sub(xmin);
        let w: Vec<f64> = (0..count)
            .map(|x| bicubic((x as f64 + xmin as f64 - center + 0.5) / filterscale))
            .collect();
        let total: f64 = w.iter().sum();
        for (x, wx) in w.iter().enumerate() {
            let v = if total != 0.0 { wx / total } else { *wx };
            // Pillow adds ±0.5 and truncates, rather than rounding.
            weights[xx * ksize + x] = (v * fxp + if v < 0.0 { -0.5 } else { 0.5 }) as i32;
        }
        bounds.push((xmin, count));
    }
    Taps {
        ksize,
        bounds,
        weights,
    }
}

fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Separable resampling, horizontal pass first, as Pillow and mtmd do.
fn resize_bicubic(src: &[u8], w: usize, h: usize, tw: usize, th: usize) -> Vec<u8> {
    let bias = 1i32 << (PRECISION_BITS - 1);
    let horizontal = if tw != w {
        let t = taps(w, tw);
        let mut out = vec![0u8; tw * h * 3];
        for y in 0..h {
            for (xx, &(xmin, count)) in t.bounds.iter().enumerate() {
                let k = &t.weights[xx * t.ksize..xx * t.ksize + count];
                for c in 0..3 {
                    let mut acc = bias;
                    for (x, kx) in k.iter().enumerate() {
                        acc += i32::from(src[(y * w + xmin + x) * 3 + c]) * kx;
                    }
                    out[(y * tw + xx) * 3 + c] = clip8(acc);
                }
            }
        }
        out
    } else {
        src.to_vec()
    };
    if th == h {
        return horizontal;
    }
    let t = taps(h, th);
    let row = tw * 3;
    let mut out = vec![0u8; row * th];
    for (yy, &(ymin, count)) in t.bounds.iter().enumerate() {
        let k = &t.weights[yy * t.ksize..yy * t.ksize + count];
        for i in 0..row {
            let mut acc = bias;
            for (y, ky) in k.iter().enumerate() {
                acc += i32::from(horizontal[(ymin + y) * row + i]) * ky;
            }
            out[yy * row + i] = clip8(acc);
        }
    }
    out
}

/// RGB8 row-major pixels into normalised planar floats (3 × size × size),
/// in clip.cpp's order of operations: `x / 255`, then `(x − mean) / std`.
pub fn normalize(rgb: &[u8], mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    let n = rgb.len() / 3;
    let mut out = vec![0f32; n * 3];
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * n + i] = (f32::from(px[c]) / 255.0 - mean[c]) / std[c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_at_the_input_size_is_copied_unchanged() {
        let src: Vec<u8> = (0..4 * 4 * 3).map(|i| (i * 7) as u8).collect();
        assert_eq!(resize_pad(&src, 4, 4, 4, PAD_COLOR), src);
    }

    #[test]
    fn a_flat_image_stays_flat_and_a_wide_one_is_padded_above_and_below() {
        let src = [10u8, 200, 30].repeat(50 * 30);
        let out = resize_pad(&src, 50, 30, 32, PAD_COLOR);
        // 50×30 → 32×ceil(19.2) = 32×20, centred: rows 6..26 hold the image.
        for y in 0..32 {
            let px = &out[y * 32 * 3..y * 32 * 3 + 3];
            let want: &[u8] = if (6..26).contains(&y) {
                &[10, 200, 30]
            } else {
                &PAD_COLOR
            };
            assert_eq!(px, want, "row {y}");
        }
    }

    #[test]
    fn the_filter_weights_sum_to_one_in_fixed_point() {
        for (i, o) in [(64, 32), (20, 32), (7, 3), (300, 336)] {
            let t = taps(i, o);
            for (xx, &(_, count)) in t.bounds.iter().enumerate() {
                let sum: i32 = t.weights[xx * t.ksize..xx * t.ksize + count].iter().sum();
                assert!(
                    (sum - (1 << PRECISION_BITS)).abs() <= count as i32,
                    "{i}→{o} pixel {xx}: {sum}"
                );
            }
        }
    }

    #[test]
    fn normalisation_is_planar_and_uses_mean_and_std_per_channel() {
        let out = normalize(&[255, 0, 51, 0, 255, 102], [0.5, 0.0, 0.2], [0.5, 1.0, 0.1]);
        let want = [1.0, -1.0, 0.0, 1.0, (0.2 - 0.2) / 0.1, (0.4 - 0.2) / 0.1];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-6, "{out:?}");
        }
    }
}
