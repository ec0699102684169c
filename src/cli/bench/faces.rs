//! `dfa bench --faces`: what the face stage costs. Detection time per image
//! at 512², 1024² and 4000² (each with the astronaut's face pasted on it;
//! detection runs on a copy downscaled to `faces.detect_max_side`, as the
//! stage does), then the share of a whole screening that detection takes on
//! the bench-size model: `analyze_bytes` in detect mode on the 1024² picture,
//! `timings_ms.detect_faces / timings_ms.total`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use image::{imageops, Rgb, RgbImage};
use uuid::Uuid;

use super::report::{self, Section};
use super::serve_follow_ups::quantile;
use super::BenchArgs;
use crate::domain::{FaceMode, Timings};
use crate::engine::analyze::{analyze_bytes, Stages};
use crate::engine::{Engine, EngineConfig, EngineInfo, Explain, Tasks};
use crate::faces::{FaceDetector, FaceStage};
use crate::intake::{decode_image, DecodedImage, Intake};
use crate::settings::{FaceSettings, Settings};

const SECTION: Section = Section {
    key: "faces",
    title: "Face detection (`dfa bench --faces`)",
    command: "scripts/bench --faces",
};

/// The public-domain astronaut portrait crop (scikit-image), the face the
/// tests measure; compiled in so the benchmark runs from any directory.
static ASTRONAUT: &[u8] = include_bytes!("../../../samples/astronaut-face.jpg");

/// Canvas sides measured (square pictures).
const SIDES: [u32; 3] = [512, 1024, 4000];
/// The side whose screening is timed end to end.
const SCREENED_SIDE: u32 = 1024;
/// The pasted portrait's width as a share of the canvas side: the face
/// keeps its size relative to the picture, so after downscaling every
/// canvas shows the detector a face of about the same size.
const FACE_SHARE: f32 = 0.4;

/// Detection on one picture size.
struct DetectRow {
    side: u32,
    /// Longest side of the copy the detector sees.
    scaled: u32,
    faces: usize,
    /// The detector alone (grey copy, downscale, cascade), ms per image.
    detect: Vec<f64>,
    /// The stage as the analysis runs it (detection and the faces' crops,
    /// what `timings_ms.detect_faces` records), ms per image.
    stage: Vec<f64>,
}

pub(super) async fn run(
    settings: &Settings,
    config: EngineConfig,
    args: &BenchArgs,
) -> anyhow::Result<ExitCode> {
    let reps = args.images.max(3);
    let faces = FaceSettings {
        mode: FaceMode::Detect,
        ..settings.faces.clone()
    };
    let detector = Arc::new(FaceDetector::new(faces.clone()).context("loading the face detector")?);
    let stage = FaceStage::new(&faces).context("loading the face detector")?;
    let mut rows = Vec::new();
    let mut screened = None;
    for side in SIDES {
        let jpeg = encode_jpeg(&canvas(side)?)?;
        let image = decode_image(&jpeg, &settings.image)?;
        eprintln!("bench: face detection at {side}x{side}, {reps} repetitions");
        rows.push(detection(&detector, &stage, image, reps).await?);
        if side == SCREENED_SIDE {
            screened = Some(jpeg);
        }
    }
    let jpeg = screened.context("the screened side is one of SIDES")?;

    eprintln!(
        "bench: screening the {SCREENED_SIDE}x{SCREENED_SIDE} picture in detect mode, {reps} times"
    );
    let engine = Engine::start(config).await.context("starting the engine")?;
    let timings = screening(&engine, settings, &stage, jpeg, reps).await?;

    let body = render(engine.info(), &faces, reps, &rows, &timings);
    println!("{body}");
    report::update(&args.report, &SECTION, &body)?;
    eprintln!("bench: wrote {}", args.report.display());
    Ok(ExitCode::SUCCESS)
}

/// A `side`² picture with the portrait pasted left of centre on a textured
/// background (a smooth gradient with a fine pattern, so the detector's
/// windows do not all fall on a flat colour, which it rejects at once).
fn canvas(side: u32) -> anyhow::Result<RgbImage> {
    let face = image::load_from_memory(ASTRONAUT)
        .context("decoding the astronaut sample")?
        .to_rgb8();
    let w = ((side as f32 * FACE_SHARE) as u32).max(1);
    let h = (w as u64 * u64::from(face.height()) / u64::from(face.width())) as u32;
    let face = imageops::resize(&face, w, h, imageops::FilterType::CatmullRom);
    let mut canvas = RgbImage::from_fn(side, side, |x, y| {
        let grain = ((x * 7 + y * 13) % 23) as u8;
        Rgb([
            (60 + x * 120 / side) as u8 + grain,
            (90 + y * 100 / side) as u8 + grain,
            150u8.wrapping_sub(grain),
        ])
    });
    imageops::overlay(
        &mut canvas,
        &face,
        i64::from(side / 5),
        i64::from(side.saturating_sub(h) / 2),
    );
    Ok(canvas)
}

/// As an upload would carry it: JPEG (a 4000² PNG of a textured picture
/// is over `image.max_bytes`).
fn encode_jpeg(img: &RgbImage) -> anyhow::Result<Vec<u8>> {
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(img)?;
    Ok(jpeg)
}

/// The detector alone, then the stage, `reps` times each after one
/// untimed run (first-touch allocations).
async fn detection(
    detector: &Arc<FaceDetector>,
    stage: &FaceStage,
    image: DecodedImage,
    reps: usize,
) -> anyhow::Result<DetectRow> {
    let side = image.width().max(image.height());
    let scaled = side.min(stage.settings().detect_max_side);
    let (d, img) = (detector.clone(), image.clone());
    let (faces, detect) = tokio::task::spawn_blocking(move || {
        let mut times = Vec::with_capacity(reps);
        let mut faces = d.detect(img.width(), img.height(), img.rgb())?.faces.len();
        for _ in 0..reps {
            let started = Instant::now();
            faces = d.detect(img.width(), img.height(), img.rgb())?.faces.len();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        Ok::<_, crate::faces::FaceError>((faces, times))
    })
    .await
    .context("detection thread")??;
    stage.find(image.clone()).await?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        // The stage's own clock: what a verdict's timings_ms.detect_faces says.
        times.push(stage.find(image.clone()).await?.ms);
    }
    Ok(DetectRow {
        side,
        scaled,
        faces,
        detect,
        stage: times,
    })
}

/// Each run's timings, one request at a time, after one untimed run.
async fn screening(
    engine: &Engine,
    settings: &Settings,
    faces: &FaceStage,
    jpeg: Vec<u8>,
    reps: usize,
) -> anyhow::Result<Vec<Timings>> {
    let intake = Intake::new(&settings.image);
    let stages = Stages {
        intake: &intake,
        analysis: &settings.analysis,
        faces,
    };
    let tasks = Tasks {
        explain: Explain::Never,
        ..Tasks::screening(1.0)
    };
    let jpeg = Arc::new(jpeg);
    let mut timings = Vec::with_capacity(reps);
    for i in 0..=reps {
        let verdict =
            analyze_bytes(engine, Uuid::new_v4(), jpeg.clone(), tasks.clone(), stages).await?;
        anyhow::ensure!(
            verdict.face_count == Some(1),
            "the benchmark picture should hold one face, found {:?}",
            verdict.face_count
        );
        if i > 0 {
            timings.push(verdict.timings_ms);
        }
    }
    Ok(timings)
}

/// Detection's share of the screening: total detection time over total
/// screening time, over all runs.
fn share(timings: &[Timings]) -> f64 {
    let detect: f64 = timings.iter().map(|t| t.detect_faces).sum();
    let total: f64 = timings.iter().map(|t| t.total).sum();
    detect / total
}

fn render(
    info: &EngineInfo,
    faces: &FaceSettings,
    reps: usize,
    rows: &[DetectRow],
    timings: &[Timings],
) -> String {
    let threads = super::threads();
    let mut out = format!(
        "SeetaFace frontal cascade (`rustface`), detection on a grey copy downscaled to at most \
         `faces.detect_max_side` = {} px, min_score {}, min_face_px {}; CPU, {threads} threads, no GPU. \
         Pictures: the astronaut portrait (samples/astronaut-face.jpg) resized to {:.0} % of the side and \
         pasted on a textured square canvas, JPEG quality 90; {reps} timed repetitions after one untimed run.\n\n",
        faces.detect_max_side,
        faces.min_score,
        faces.min_face_px,
        FACE_SHARE * 100.0
    );
    out.push_str(
        "| picture | detector sees | faces found | detector median ms | detector p90 ms | stage (detect + crops) median ms | stage p90 ms |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {s}x{s} | {d}x{d} | {} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
            r.faces,
            quantile(&r.detect, 0.5),
            quantile(&r.detect, 0.9),
            quantile(&r.stage, 0.5),
            quantile(&r.stage, 0.9),
            s = r.side,
            d = r.scaled,
        ));
    }
    let col = |f: fn(&Timings) -> f64| timings.iter().map(f).collect::<Vec<f64>>();
    let stages: [(&str, Vec<f64>); 6] = [
        ("decode the JPEG", col(|t| t.decode_image)),
        (
            "detect faces and crop (`detect_faces`)",
            col(|t| t.detect_faces),
        ),
        ("vision tower (`encode_image`)", col(|t| t.encode_image)),
        ("prefill", col(|t| t.prefill)),
        ("generate", col(|t| t.generate)),
        ("total", col(|t| t.total)),
    ];
    out.push_str(&format!(
        "\nScreening the {SCREENED_SIDE}x{SCREENED_SIDE} picture end to end (`analyze_bytes`, \
         faces.mode = detect, one face, screening without a description, one request at a time) \
         on the bench-size model ({} image tokens), {} runs:\n\n\
         | stage | median ms | p90 ms |\n|---|---:|---:|\n",
        info.image_tokens,
        timings.len()
    ));
    for (name, xs) in &stages {
        out.push_str(&format!(
            "| {name} | {:.1} | {:.1} |\n",
            quantile(xs, 0.5),
            quantile(xs, 0.9)
        ));
    }
    out.push_str(&format!(
        "\nFace detection takes **{:.1} %** of the screening time (sum of `detect_faces` over sum of `total`).\n",
        share(timings) * 100.0
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::{canvas, share, FaceDetector, FaceMode, SIDES};
    use crate::domain::Timings;
    use crate::settings::Settings;

    #[test]
    fn the_share_is_detection_over_total_across_runs() {
        let t = |detect_faces, total| Timings {
            detect_faces,
            total,
            ..Timings::default()
        };
        assert_eq!(share(&[t(10.0, 100.0), t(30.0, 300.0)]), 0.1);
    }

    #[test]
    fn the_smallest_canvas_shows_the_detector_its_face() {
        // The others differ only in scale, which the stage undoes.
        let mut faces = Settings::embedded().unwrap().faces;
        faces.mode = FaceMode::Detect;
        let img = canvas(SIDES[0]).unwrap();
        let found = FaceDetector::new(faces)
            .unwrap()
            .detect(img.width(), img.height(), img.as_raw())
            .unwrap();
        assert_eq!(found.faces.len(), 1, "{found:?}");
    }
}
