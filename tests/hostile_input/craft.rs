//! Hostile images built byte by byte, so the corpus needs no binary fixtures
//! and no encoder the image crate lacks (progressive and CMYK JPEG).

use std::io::Cursor;

use image::{ImageEncoder, ImageFormat, RgbImage};

pub fn gradient(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 99]))
}

pub fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

// ---- PNG ----------------------------------------------------------------

/// A valid 16x16 PNG whose IHDR then declares `w`x`h` (CRC recomputed, so the
/// decoder reads the lie as the truth); its IDAT holds 16x16 pixels at most.
pub fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(&[0u8; 3 * 16 * 16], 16, 16, image::ExtendedColorType::Rgb8)
        .expect("encode png");
    // IHDR data starts at 16 (8 signature + 4 length + 4 type), 13 bytes.
    bytes[16..20].copy_from_slice(&w.to_be_bytes());
    bytes[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32fast::hash(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

/// A 16-bit-per-channel PNG (`channels`: 1 grey, 3 RGB, 4 RGBA).
pub fn png_16bit(w: u32, h: u32, channels: usize) -> Vec<u8> {
    let color = match channels {
        1 => image::ExtendedColorType::L16,
        3 => image::ExtendedColorType::Rgb16,
        _ => image::ExtendedColorType::Rgba16,
    };
    // Native-endian u16 samples, as `write_image` takes them: all 0xFFFF.
    let samples = vec![0xFFu8; w as usize * h as usize * channels * 2];
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(&samples, w, h, color)
        .expect("encode 16-bit png");
    bytes
}

// ---- GIF ----------------------------------------------------------------

/// A GIF whose logical screen and only frame are `w`x`h` (0x0 allowed): a
/// two-colour table and an LZW stream of clear + end codes (no pixels).
pub fn gif_empty_frame(w: u16, h: u16) -> Vec<u8> {
    let mut g = b"GIF89a".to_vec();
    g.extend_from_slice(&w.to_le_bytes());
    g.extend_from_slice(&h.to_le_bytes());
    g.extend_from_slice(&[0x80, 0, 0]); // global table of 2 colours
    g.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
    g.push(0x2C); // image descriptor
    g.extend_from_slice(&[0, 0, 0, 0]);
    g.extend_from_slice(&w.to_le_bytes());
    g.extend_from_slice(&h.to_le_bytes());
    g.push(0);
    // Minimum code size 2: clear = 4, end = 5, in 3-bit codes, LSB first.
    g.extend_from_slice(&[2, 1, 0x2C, 0]);
    g.push(0x3B);
    g
}

/// A GIF of `frames` identical 16x16 frames.
pub fn gif_many_frames(frames: usize) -> Vec<u8> {
    let frame = image::RgbaImage::from_pixel(16, 16, image::Rgba([200, 30, 30, 255]));
    let mut bytes = Vec::new();
    {
        let mut encoder = image::codecs::gif::GifEncoder::new_with_speed(&mut bytes, 30);
        let all = (0..frames).map(|_| image::Frame::new(frame.clone()));
        encoder.encode_frames(all).expect("encode gif");
    }
    bytes
}

// ---- JPEG ---------------------------------------------------------------

/// One scan of a hand-built JPEG: its components (0-based) and spectral band.
pub struct Scan {
    pub components: Vec<u8>,
    pub band: (u8, u8),
}

/// A JPEG of a flat mid-grey image (every DCT coefficient zero), `ncomp`
/// components (4: CMYK, tagged by an Adobe APP14 segment), baseline or
/// progressive, with the given scans. Every coefficient being zero makes
/// the entropy coding trivial: one Huffman code of one bit ("0") per table,
/// DC difference 0 and end-of-block, so each block costs one bit per table.
pub fn flat_jpeg(w: u16, h: u16, ncomp: u8, progressive: bool, scans: &[Scan]) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    if ncomp == 4 {
        // "Adobe", version 100, flags, transform 0: stored as CMYK.
        segment(&mut out, 0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x00");
    }
    let mut dqt = vec![0x00];
    dqt.extend_from_slice(&[1u8; 64]);
    segment(&mut out, 0xDB, &dqt);
    let mut sof = vec![8];
    sof.extend_from_slice(&h.to_be_bytes());
    sof.extend_from_slice(&w.to_be_bytes());
    sof.push(ncomp);
    for c in 0..ncomp {
        sof.extend_from_slice(&[c + 1, 0x11, 0]);
    }
    segment(&mut out, if progressive { 0xC2 } else { 0xC0 }, &sof);
    for class in [0x00, 0x10] {
        // One code of length 1 for symbol 0 (DC: difference 0; AC: EOB).
        let mut dht = vec![class, 1];
        dht.extend_from_slice(&[0u8; 15]);
        dht.push(0);
        segment(&mut out, 0xC4, &dht);
    }
    let blocks = usize::from(w.div_ceil(8)) * usize::from(h.div_ceil(8));
    for scan in scans {
        let mut sos = vec![scan.components.len() as u8];
        for c in &scan.components {
            sos.extend_from_slice(&[c + 1, 0x00]);
        }
        sos.extend_from_slice(&[scan.band.0, scan.band.1, 0x00]);
        segment(&mut out, 0xDA, &sos);
        // Baseline blocks hold a DC code and an EOB; a progressive scan holds
        // either the DC code or an EOB.
        let per_block = if progressive { 1 } else { 2 };
        out.extend(entropy_zero_bits(
            blocks * scan.components.len() * per_block,
        ));
    }
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

/// A baseline RGB JPEG header declaring `w`x`h`, one scan header and no
/// entropy data: the decoder reads the size, there is nothing to decode.
pub fn jpeg_header_only(w: u16, h: u16) -> Vec<u8> {
    let mut bytes = flat_jpeg(w, h, 3, false, &[]);
    let eoi = bytes.split_off(bytes.len() - 2);
    segment(&mut bytes, 0xDA, &[3, 1, 0, 2, 0, 3, 0, 0, 63, 0]);
    bytes.extend(eoi);
    bytes
}

/// The scans of a progressive JPEG: one interleaved DC scan, then one scan
/// per AC coefficient per component (63 each): `1 + 63 * ncomp` scans.
pub fn every_band(ncomp: u8) -> Vec<Scan> {
    let mut scans = vec![Scan {
        components: (0..ncomp).collect(),
        band: (0, 0),
    }];
    for c in 0..ncomp {
        scans.extend((1..=63).map(|k| Scan {
            components: vec![c],
            band: (k, k),
        }));
    }
    scans
}

/// `n` zero bits, padded with one bits to a byte (no 0xFF byte can occur).
fn entropy_zero_bits(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n / 8];
    if !n.is_multiple_of(8) {
        bytes.push(0xFF >> (n % 8));
    }
    bytes
}

fn segment(out: &mut Vec<u8>, marker: u8, data: &[u8]) {
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&((data.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(data);
}

// ---- WebP and BMP -------------------------------------------------------

/// A RIFF/WEBP container holding one chunk `fourcc` with `payload`.
pub fn webp_chunk(fourcc: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut chunk = fourcc.to_vec();
    chunk.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    chunk.extend_from_slice(payload);
    if payload.len() % 2 == 1 {
        chunk.push(0);
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&((chunk.len() + 4) as u32).to_le_bytes());
    out.extend_from_slice(b"WEBP");
    out.extend_from_slice(&chunk);
    out
}

/// A VP8X header declaring a `w`x`h` canvas (each side stored minus one).
pub fn webp_vp8x(w: u32, h: u32) -> Vec<u8> {
    let mut payload = vec![0u8; 4];
    payload.extend_from_slice(&(w - 1).to_le_bytes()[..3]);
    payload.extend_from_slice(&(h - 1).to_le_bytes()[..3]);
    webp_chunk(b"VP8X", &payload)
}

/// A BMP with a BITMAPINFOHEADER declaring `w`x`h` at `bpp` bits per pixel,
/// followed by `pixels` bytes of pixel data.
pub fn bmp(w: i32, h: i32, bpp: u16, compression: u32, pixels: usize) -> Vec<u8> {
    let mut out = b"BM".to_vec();
    out.extend_from_slice(&((54 + pixels) as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&54u32.to_le_bytes());
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&w.to_le_bytes());
    out.extend_from_slice(&h.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&bpp.to_le_bytes());
    out.extend_from_slice(&compression.to_le_bytes());
    out.extend_from_slice(&[0; 20]);
    out.extend(std::iter::repeat_n(0x5Au8, pixels));
    out
}
