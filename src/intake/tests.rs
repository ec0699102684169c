//! Intake: formats, limits, orientation, and the decode budget.

use std::io::Cursor;

use super::*;
use image::ImageFormat;
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
    let err = decode_image(&encode(&gradient(32, 32), ImageFormat::Png), &small_limit).unwrap_err();
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

mod budget {
    //! The decode budget bounds the decoded bytes held at once; asserted on
    //! the budget's own counters, never on timing.
    use std::time::Duration;

    use super::*;
    use image::{DynamicImage, ImageBuffer, Rgb};

    /// 64x64 RGB8: the decode's peak is its output, 12 KiB exactly.
    const RGB8_IMAGE: u64 = 64 * 64 * 3;

    fn intake(budget: u64) -> Intake {
        Intake::new(&ImageSettings {
            decode_budget_bytes: budget,
            ..limits()
        })
    }

    fn png() -> Arc<Vec<u8>> {
        Arc::new(encode(&gradient(64, 64), ImageFormat::Png))
    }

    fn png16(w: u32, h: u32) -> (DynamicImage, Vec<u8>) {
        let img = DynamicImage::ImageRgb16(ImageBuffer::from_fn(w, h, |x, y| {
            Rgb([(x * 1031) as u16, (y * 977) as u16, 40_000])
        }));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        (img, out.into_inner())
    }

    /// Waits (bounded) until `n` decodes wait for room.
    async fn until_waiting(intake: &Intake, n: usize) {
        tokio::time::timeout(Duration::from_secs(20), async {
            while intake.budget().waiting() < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("a decode waits for room");
    }

    #[tokio::test]
    async fn with_room_for_two_images_the_third_waits_until_one_is_dropped() {
        let intake = intake(2 * RGB8_IMAGE);
        let a = intake.decode(png()).await.0.unwrap();
        let b = intake.decode(png()).await.0.unwrap();
        assert_eq!(intake.budget().held_bytes(), 2 * RGB8_IMAGE);

        let third = {
            let intake = intake.clone();
            tokio::spawn(async move { intake.decode(png()).await.0 })
        };
        until_waiting(&intake, 1).await;
        // It cannot finish while both images are alive: no room.
        assert!(!third.is_finished());
        assert_eq!(intake.budget().held_bytes(), 2 * RGB8_IMAGE);

        drop(a);
        let c = tokio::time::timeout(Duration::from_secs(20), third)
            .await
            .expect("the third decode ends once an image is dropped")
            .unwrap()
            .unwrap();
        assert_eq!(c.rgb(), b.rgb());
        assert_eq!(intake.budget().peak_held_bytes(), 2 * RGB8_IMAGE);
        drop((b, c));
        assert_eq!(intake.budget().held_bytes(), 0);
    }

    #[tokio::test]
    async fn many_concurrent_decodes_never_hold_more_than_the_budget() {
        let intake = intake(2 * RGB8_IMAGE);
        let decodes = (0..8).map(|_| {
            let intake = intake.clone();
            tokio::spawn(async move {
                let (image, _) = intake.decode(png()).await;
                // Held a while, as the engine holds it until prepared.
                tokio::task::yield_now().await;
                image.map(|i| i.width())
            })
        });
        for done in futures::future::join_all(decodes).await {
            assert_eq!(done.unwrap(), Ok(64));
        }
        assert!(intake.budget().peak_held_bytes() <= 2 * RGB8_IMAGE);
        assert_eq!(intake.budget().held_bytes(), 0);
    }

    #[tokio::test]
    async fn an_image_larger_than_the_whole_budget_waits_for_all_of_it() {
        // Room for a third of one image: each decode takes the whole budget.
        let intake = intake(RGB8_IMAGE / 3);
        let first = intake.decode(png()).await.0.unwrap();
        assert_eq!(intake.budget().held_bytes(), intake.budget().total_bytes());

        let second = {
            let intake = intake.clone();
            tokio::spawn(async move { intake.decode(png()).await.0 })
        };
        until_waiting(&intake, 1).await;
        assert!(!second.is_finished());
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(20), second)
            .await
            .expect("decodes alone once the budget is free")
            .unwrap();
        assert_eq!(second.unwrap().width(), 64);
        assert_eq!(
            intake.budget().peak_held_bytes(),
            intake.budget().total_bytes()
        );
    }

    #[tokio::test]
    async fn a_16_bit_image_keeps_only_its_rgb8_share_once_decoded() {
        let (original, bytes) = png16(100, 60);
        let intake = intake(1 << 20);
        let image = intake.decode(Arc::new(bytes.clone())).await.0.unwrap();
        // Reserved at 6 bytes a pixel while decoding, 3 once narrowed.
        let kib = |bytes: u64| bytes.div_ceil(1024) * 1024;
        assert_eq!(intake.budget().peak_held_bytes(), kib(100 * 60 * 6));
        assert_eq!(intake.budget().held_bytes(), kib(100 * 60 * 3));
        assert_eq!(image.rgb(), original.to_rgb8().as_raw().as_slice());
        assert_eq!(image.rgb(), decode_image(&bytes, &limits()).unwrap().rgb());
        drop(image);
        assert_eq!(intake.budget().held_bytes(), 0);
    }

    #[tokio::test]
    async fn a_failed_decode_gives_its_reservation_back() {
        // The header is whole, the pixels are cut: refused after reserving.
        let png = encode(&gradient(64, 64), ImageFormat::Png);
        let cut = Arc::new(png[..png.len() - 40].to_vec());
        let intake = intake(1 << 20);
        let err = intake.decode(cut).await.0.unwrap_err();
        assert_eq!(err.kind(), "corrupt", "{err}");
        assert!(intake.budget().peak_held_bytes() > 0);
        assert_eq!(intake.budget().held_bytes(), 0);
    }
}
