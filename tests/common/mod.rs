//! Shared by the integration tests: the generated tiny model and test images.
#![allow(dead_code)]

pub mod child;
pub mod fake_backend;
pub mod services;

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::OnceLock;

use dfa::domain::prompts::Prompts;
use dfa::engine::{AdapterSpec, Engine, EngineConfig};
use dfa::intake::{decode_image, DecodedImage};
use dfa::model::files::ensure_tiny_model;
use dfa::model::tiny::GeneratedModel;
use dfa::settings::Settings;
use image::{ImageFormat, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Polls `probe` every `every` until `done` holds for its value or `timeout`
/// passes; returns the last value, so the caller asserts on what it waited for.
pub async fn poll_until<T, F, Fut>(
    timeout: std::time::Duration,
    every: std::time::Duration,
    mut probe: F,
    done: impl Fn(&T) -> bool,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let value = probe().await;
        if done(&value) || std::time::Instant::now() > deadline {
            return value;
        }
        tokio::time::sleep(every).await;
    }
}

/// The tiny model, generated once per test binary into the target's tmp dir.
pub fn tiny() -> &'static GeneratedModel {
    static TINY: OnceLock<GeneratedModel> = OnceLock::new();
    TINY.get_or_init(|| {
        let dir = tiny_dir();
        ensure_tiny_model(&dir, &Prompts::embedded()).expect("generate the tiny model")
    })
}

pub fn tiny_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tiny-model")
}

/// The embedded settings, with `faces.mode = "off"`: the generated test
/// pictures hold no face, and tests that are not about faces screen them
/// whole. Tests of the face stage set the mode they test.
pub fn settings() -> Settings {
    let mut s = Settings::embedded().expect("embedded settings");
    s.faces.mode = dfa::domain::FaceMode::Off;
    s
}

pub fn engine_config(adapter: Option<AdapterSpec>) -> EngineConfig {
    let model = tiny();
    let mut config = EngineConfig::from_settings(
        &settings(),
        model.gguf.clone(),
        model.mmproj.clone(),
        adapter,
        Prompts::embedded(),
    );
    config.engine.n_ctx = 4096;
    config.engine.threads = 2;
    config.engine.threads_batch = 2;
    config.max_explain_tokens = 24;
    config.max_answer_tokens = 16;
    if std::env::var_os("KV32").is_some() {
        config.engine.kv_cache_type = dfa::settings::KvCacheKind::F32;
    }
    if std::env::var_os("FAOFF").is_some() {
        config.engine.flash_attention = dfa::settings::FlashAttention::Off;
    }
    config
}

pub async fn engine(adapter: Option<AdapterSpec>) -> Engine {
    Engine::start(engine_config(adapter))
        .await
        .expect("engine starts")
}

pub fn adapter(index: usize, scale: f32) -> AdapterSpec {
    AdapterSpec {
        id: format!("tiny-{index}"),
        path: tiny().adapters[index].clone(),
        scale,
        mmproj: None,
    }
}

/// A deterministic, distinct picture per seed: coloured blobs on a gradient.
pub fn picture(seed: u32, w: u32, h: u32) -> RgbImage {
    let cx = (seed * 37 % w.max(1)) as f32;
    let cy = (seed * 91 % h.max(1)) as f32;
    RgbImage::from_fn(w, h, |x, y| {
        let d = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
        let r = (x * 255 / w.max(1)) as u8 ^ (seed as u8).wrapping_mul(29);
        let g = if d < (w as f32) / 4.0 {
            230
        } else {
            (y * 255 / h.max(1)) as u8
        };
        let b = ((seed * 53) as u8).wrapping_add((x + y) as u8);
        image::Rgb([r, g, b])
    })
}

pub fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

pub fn decoded(seed: u32) -> DecodedImage {
    let bytes = encode(&picture(seed, 64, 64), ImageFormat::Png);
    decode_image(&bytes, &settings().image).expect("decode")
}

/// A picture from samples/ (real photographs).
#[allow(dead_code)]
pub fn sample(name: &str) -> image::RgbImage {
    let path = format!("{}/samples/{name}", env!("CARGO_MANIFEST_DIR"));
    image::open(&path).expect("sample decodes").to_rgb8()
}

/// Where `two_faces` pasted the astronaut's face: its measured box (see
/// tests/faces.rs) at full size at (150, 300), and at 1.5× at (1400, 500).
#[allow(dead_code)]
pub const TWO_FACES_AT: [(u32, u32, u32, u32); 2] = [(185, 365, 115, 115), (1452, 597, 173, 173)];

/// Two copies of the astronaut's face on a grey 2000×1200 canvas: one as
/// it is at (150, 300), one 1.5× larger and darkened at (1400, 500).
#[allow(dead_code)]
pub fn two_faces() -> image::RgbImage {
    use image::imageops;
    let face = sample("astronaut-face.jpg");
    let big = imageops::resize(
        &face,
        face.width() * 3 / 2,
        face.height() * 3 / 2,
        imageops::FilterType::CatmullRom,
    );
    let big = imageops::colorops::brighten(&big, -50);
    let mut canvas = image::RgbImage::from_pixel(2000, 1200, image::Rgb([200, 205, 210]));
    imageops::overlay(&mut canvas, &face, 150, 300);
    imageops::overlay(&mut canvas, &big, 1400, 500);
    canvas
}

/// A page of text: black 8×8 glyphs (font8x8, ×3) on white, the kind of
/// screenshot or document upload that holds no face.
#[allow(dead_code)]
pub fn text_page() -> image::RgbImage {
    use font8x8::legacy::BASIC_LEGACY;
    const LINES: [&str; 6] = [
        "Terms of service, section 4.2: uploads",
        "must not contain synthetic media that",
        "depicts a real person without consent.",
        "Reviewers escalate reports within 24h.",
        "Appeals: trust-and-safety@example.com",
        "Page 3 of 12",
    ];
    let scale = 3u32;
    let mut page = image::RgbImage::from_pixel(1000, 700, image::Rgb([255, 255, 255]));
    for (row, line) in LINES.iter().enumerate() {
        for (col, ch) in line.chars().enumerate() {
            let glyph = BASIC_LEGACY.get(ch as usize).copied().unwrap_or([0; 8]);
            for (gy, bits) in glyph.iter().enumerate() {
                for gx in 0..8u32 {
                    if bits >> gx & 1 == 0 {
                        continue;
                    }
                    for (dx, dy) in (0..scale).flat_map(|a| (0..scale).map(move |b| (a, b))) {
                        let x = 40 + col as u32 * 8 * scale + gx * scale + dx;
                        let y = 60 + row as u32 * 12 * scale + gy as u32 * scale + dy;
                        if x < page.width() && y < page.height() {
                            page.put_pixel(x, y, image::Rgb([0, 0, 0]));
                        }
                    }
                }
            }
        }
    }
    page
}

/// Forged faces are reddish, real ones bluish: a rule a LoRA can learn from
/// the tiny model's image embeddings and apply to images it never saw.
pub fn class_picture(fake: bool, seed: u64) -> RgbImage {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let base: [i32; 3] = if fake { [205, 70, 60] } else { [60, 80, 205] };
    let (cx, cy, r) = (
        rng.gen_range(8..40),
        rng.gen_range(8..40),
        rng.gen_range(4..12),
    );
    let blob: [i32; 3] = [
        rng.gen_range(0..256),
        rng.gen_range(0..256),
        rng.gen_range(0..256),
    ];
    RgbImage::from_fn(48, 48, |x, y| {
        let inside = (x as i32 - cx).pow(2) + (y as i32 - cy).pow(2) < r * r;
        let mut px = |c: usize| {
            let v = if inside {
                blob[c]
            } else {
                base[c] + rng.gen_range(-45..45)
            };
            v.clamp(0, 255) as u8
        };
        image::Rgb([px(0), px(1), px(2)])
    })
}

/// Retrain settings for the tiny model: small and quick, deterministic.
pub const TRAIN_ENV: [(&str, &str); 7] = [
    ("DFA__RETRAIN__RANK", "4"),
    ("DFA__RETRAIN__ALPHA", "8"),
    ("DFA__RETRAIN__DROPOUT", "0"),
    ("DFA__RETRAIN__EPOCHS", "8"),
    ("DFA__RETRAIN__LEARNING_RATE", "0.005"),
    ("DFA__RETRAIN__BATCH_SIZE", "4"),
    ("DFA__ENGINE__THREADS", "2"),
];

/// Small, quick LoRA hyper-parameters for the tiny model.
pub fn train_config(
    seed: u64,
    targets: &[dfa::trainer::lora::Projection],
    train_projector: bool,
) -> dfa::trainer::TrainConfig {
    dfa::trainer::TrainConfig {
        targets: targets.to_vec(),
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        learning_rate: 5e-3,
        weight_decay: 0.0,
        epochs: 3,
        batch_size: 2,
        seed,
        train_projector,
        weights_dtype: Default::default(),
    }
}
