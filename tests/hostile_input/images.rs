//! A corpus of hostile images through image intake, both as the worker calls
//! it (`Intake::decode`, budgeted, on blocking threads) and synchronously
//! (`decode_image`, the same probe and decode, metered for allocation).
//! Each must give a typed rejection of the kind named here, or decode to the
//! small image named here; never panic, never allocate beyond a bound.

use std::sync::Arc;

use dfa::intake::{decode_image, DecodedImage, ImageError, Intake};
use dfa::settings::{ImageSettings, Settings};
use image::ImageFormat;
use proptest::prelude::*;

use super::craft::{self, Scan};
use crate::{assert_documented, documented_kinds, peak_allocation};

const MIB: u64 = 1 << 20;

/// What a corpus entry must come to.
#[derive(Debug)]
enum Expect {
    /// Rejected with one of these kinds.
    Rejected(&'static [&'static str]),
    /// Decoded to this size.
    Decodes(u32, u32),
}

use Expect::{Decodes, Rejected};

struct Case {
    name: String,
    bytes: Vec<u8>,
    expect: Expect,
    /// The most bytes its decode may hold at once.
    max_alloc: u64,
}

fn case(name: impl Into<String>, bytes: Vec<u8>, expect: Expect) -> Case {
    Case {
        name: name.into(),
        bytes,
        expect,
        // Every image here declares a size over the limits or is tiny.
        max_alloc: MIB,
    }
}

fn limits() -> ImageSettings {
    Settings::embedded().expect("embedded settings").image
}

/// Whether intake gave what `case` expects, wherever it ran; why not if not.
fn check(case: &Case, result: &Result<DecodedImage, ImageError>, path: &str) -> Option<String> {
    let what = format!("{} ({path}, {} bytes)", case.name, case.bytes.len());
    match (result, &case.expect) {
        (Err(e), Rejected(kinds)) => {
            let documented = documented_kinds().iter().any(|k| k == e.kind());
            if !documented || !kinds.contains(&e.kind()) || e.to_string().contains("panicked") {
                return Some(format!("{what}: expected {kinds:?}, got {e:?}"));
            }
            None
        }
        (Ok(img), Decodes(w, h))
            if (img.width(), img.height()) == (*w, *h)
                && img.rgb().len() == *w as usize * *h as usize * 3 =>
        {
            None
        }
        (got, expected) => Some(format!("{what}: expected {expected:?}, got {got:?}")),
    }
}

fn corpus() -> Vec<Case> {
    let mut cases = vec![
        case("empty input", vec![], Rejected(&["empty"])),
        case(
            "text",
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            Rejected(&["unsupported_format"]),
        ),
    ];
    cases.extend(truncated(ImageFormat::Jpeg));
    cases.extend(truncated(ImageFormat::Png));
    cases.extend(png_cases());
    cases.extend(gif_cases());
    cases.extend(jpeg_cases());
    cases.extend(webp_and_bmp_cases());
    cases
}

/// A 64x64 image cut at several points: no image is made of a prefix.
fn truncated(format: ImageFormat) -> Vec<Case> {
    let whole = craft::encode(&craft::gradient(64, 64), format);
    // Inside the signature, the header, and three points of the pixel data.
    let n = whole.len();
    [3, 12, n / 4, n / 2, n * 3 / 4]
        .into_iter()
        .map(|cut| {
            let kinds: &[&str] = if cut < 8 {
                &["corrupt", "unsupported_format"]
            } else {
                &["corrupt"]
            };
            let name = format!("{format:?} truncated to {cut} of {n} bytes");
            case(name, whole[..cut].to_vec(), Rejected(kinds))
        })
        .collect()
}

fn png_cases() -> Vec<Case> {
    vec![
        case(
            "PNG declaring 100000x100000",
            craft::png_declaring(100_000, 100_000),
            Rejected(&["too_large"]),
        ),
        case(
            "PNG declaring u32::MAX squared",
            craft::png_declaring(u32::MAX, u32::MAX),
            Rejected(&["too_large", "corrupt"]),
        ),
        case(
            "PNG declaring 100000x1",
            craft::png_declaring(100_000, 1),
            Rejected(&["too_small"]),
        ),
        case(
            "PNG declaring 0x0",
            craft::png_declaring(0, 0),
            Rejected(&["corrupt", "too_small"]),
        ),
        Case {
            // Under max_pixels, so it is decoded; its data runs out at once.
            max_alloc: 4000 * 4000 * 8 + 64 * MIB,
            ..case(
                "PNG declaring 4000x4000 holding 16x16",
                craft::png_declaring(4000, 4000),
                Rejected(&["corrupt"]),
            )
        },
        case(
            "16-bit grey PNG",
            craft::png_16bit(64, 48, 1),
            Decodes(64, 48),
        ),
        case(
            "16-bit RGB PNG",
            craft::png_16bit(64, 48, 3),
            Decodes(64, 48),
        ),
        case(
            "16-bit RGBA PNG",
            craft::png_16bit(64, 48, 4),
            Decodes(64, 48),
        ),
    ]
}

fn gif_cases() -> Vec<Case> {
    vec![
        case(
            "GIF of 0x0",
            craft::gif_empty_frame(0, 0),
            Rejected(&["corrupt", "too_small"]),
        ),
        case(
            "GIF declaring 65535x65535",
            craft::gif_empty_frame(65535, 65535),
            Rejected(&["too_large"]),
        ),
        case(
            "GIF 32x32 whose frame holds no pixels",
            craft::gif_empty_frame(32, 32),
            Rejected(&["corrupt"]),
        ),
        case(
            "GIF of 3000 frames",
            craft::gif_many_frames(3000),
            Decodes(16, 16),
        ),
    ]
}

fn jpeg_cases() -> Vec<Case> {
    let deep: Vec<Scan> = std::iter::once(Scan {
        components: vec![0],
        band: (0, 0),
    })
    .chain((0..5000).map(|_| Scan {
        components: vec![0],
        band: (1, 63),
    }))
    .collect();
    vec![
        case(
            "baseline grey JPEG (hand-built)",
            craft::flat_jpeg(
                48,
                40,
                1,
                false,
                &[Scan {
                    components: vec![0],
                    band: (0, 63),
                }],
            ),
            Decodes(48, 40),
        ),
        case(
            "progressive grey JPEG of 64 scans",
            craft::flat_jpeg(64, 64, 1, true, &craft::every_band(1)),
            Decodes(64, 64),
        ),
        case(
            "CMYK baseline JPEG",
            craft::flat_jpeg(
                40,
                24,
                4,
                false,
                &[Scan {
                    components: vec![0, 1, 2, 3],
                    band: (0, 63),
                }],
            ),
            Decodes(40, 24),
        ),
        // zune-jpeg refuses more than 100 scans (its guard against this DoS).
        case(
            "CMYK progressive JPEG of 253 scans",
            craft::flat_jpeg(40, 24, 4, true, &craft::every_band(4)),
            Rejected(&["corrupt"]),
        ),
        case(
            "progressive JPEG of 5001 scans",
            craft::flat_jpeg(32, 32, 1, true, &deep),
            Rejected(&["corrupt"]),
        ),
        case(
            "JPEG declaring 65535x65535",
            craft::jpeg_header_only(65535, 65535),
            Rejected(&["too_large"]),
        ),
        case(
            "JPEG declaring 0x0",
            craft::jpeg_header_only(0, 0),
            Rejected(&["corrupt", "too_small"]),
        ),
    ]
}

fn webp_and_bmp_cases() -> Vec<Case> {
    let mut lying_riff = craft::webp_chunk(b"VP8 ", &[0x9D; 64]);
    lying_riff[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    vec![
        case(
            "WebP VP8 of noise",
            craft::webp_chunk(b"VP8 ", &[0x9D; 64]),
            Rejected(&["corrupt"]),
        ),
        case(
            "WebP VP8L of noise",
            craft::webp_chunk(b"VP8L", &[0x2F; 64]),
            Rejected(&["corrupt"]),
        ),
        case(
            "WebP whose RIFF size lies",
            lying_riff,
            Rejected(&["corrupt"]),
        ),
        case(
            "WebP VP8X declaring 16384x16384",
            craft::webp_vp8x(16384, 16384),
            Rejected(&["too_large", "corrupt"]),
        ),
        case(
            "WebP VP8X of 64x64 with no image",
            craft::webp_vp8x(64, 64),
            Rejected(&["corrupt"]),
        ),
        case(
            "BMP of 0 bits per pixel",
            craft::bmp(64, 64, 0, 0, 64),
            Rejected(&["corrupt"]),
        ),
        // The BMP decoder refuses sides over 65535 itself, before intake's
        // pixel check, and intake reports its refusal as corrupt.
        case(
            "BMP declaring 100000x100000",
            craft::bmp(100_000, 100_000, 24, 0, 64),
            Rejected(&["too_large", "corrupt"]),
        ),
        case(
            "BMP of width -1",
            craft::bmp(-1, 64, 24, 0, 64),
            Rejected(&["corrupt"]),
        ),
        case(
            "BMP of height i32::MIN",
            craft::bmp(64, i32::MIN, 24, 0, 64),
            Rejected(&["corrupt", "too_large"]),
        ),
        case(
            "BMP of compression 99",
            craft::bmp(64, 64, 24, 99, 64),
            Rejected(&["corrupt", "unsupported_format"]),
        ),
        case(
            "BMP of 64x64 holding 64 bytes",
            craft::bmp(64, 64, 24, 0, 64),
            Rejected(&["corrupt"]),
        ),
    ]
}

#[test]
fn every_hostile_image_is_rejected_by_kind_or_decoded_small_within_bounded_memory() {
    let limits = limits();
    let mut failures = Vec::new();
    for case in corpus() {
        let started = std::time::Instant::now();
        let (result, peak) = peak_allocation(|| decode_image(&case.bytes, &limits));
        failures.extend(check(&case, &result, "decode_image"));
        drop(result);
        if peak > case.max_alloc {
            let bound = case.max_alloc;
            failures.push(format!(
                "{}: held {peak} bytes at once, the bound is {bound}",
                case.name
            ));
        }
        let took = started.elapsed();
        if took.as_secs() >= 5 {
            failures.push(format!("{}: took {took:?}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn the_workers_intake_gives_the_same_answers() {
    let intake = Intake::new(&limits());
    let mut failures = Vec::new();
    for case in corpus() {
        let (result, _ms) = intake.decode(Arc::new(case.bytes.clone())).await;
        failures.extend(check(&case, &result, "Intake::decode"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        intake.budget().held_bytes(),
        0,
        "every reservation given back"
    );
}

/// zune-jpeg fills a truncated scan with grey; intake refuses a JPEG without
/// its end marker for that reason, but a cut JPEG with the two end-marker
/// bytes put back still decodes, half grey (found by this corpus).
#[test]
#[ignore = "intake gap: a truncated scan followed by FF D9 decodes (src/intake)"]
fn a_jpeg_cut_in_its_scan_with_the_end_marker_put_back_is_corrupt() {
    let whole = craft::encode(&craft::gradient(64, 64), ImageFormat::Jpeg);
    let mut cut = whole[..whole.len() / 2].to_vec();
    cut.extend_from_slice(&[0xFF, 0xD9]);
    let err = decode_image(&cut, &limits()).expect_err("half a scan must not decode");
    assert_eq!(err.kind(), "corrupt", "{err}");
}

/// Random bytes behind each accepted format's signature, so they reach the
/// decoders rather than the format sniffing.
fn signed_noise() -> impl Strategy<Value = Vec<u8>> {
    let signature = prop::sample::select(vec![
        &b""[..],
        b"\x89PNG\r\n\x1a\n",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR",
        b"\xFF\xD8\xFF",
        b"\xFF\xD8\xFF\xC2",
        b"GIF89a",
        b"GIF87a",
        b"BM",
        b"RIFF\x00\x01\x00\x00WEBPVP8 ",
        b"RIFF\x00\x01\x00\x00WEBPVP8L",
        b"RIFF\x00\x01\x00\x00WEBPVP8X",
    ]);
    (signature, prop::collection::vec(any::<u8>(), 0..2048)).prop_map(|(sig, noise)| {
        let mut bytes = sig.to_vec();
        bytes.extend(noise);
        bytes
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn noise_is_rejected_by_kind_within_the_decoders_limits(bytes in signed_noise()) {
        let limits = limits();
        let (result, peak) = peak_allocation(|| decode_image(&bytes, &limits));
        // What intake lets a decoder hold: RGBA8 at max_pixels plus 64 MiB.
        let bound = limits.max_pixels * 8 + 64 * MIB;
        prop_assert!(peak <= bound, "{} bytes held at once", peak);
        if let Err(e) = result {
            assert_documented(
                e.kind(),
                &["empty", "unsupported_format", "corrupt", "too_large", "too_small"],
                &format!("{e}"),
            );
        }
    }
}
