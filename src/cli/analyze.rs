//! `dfa analyze`: every image is attempted; one JSON line each, in input
//! order, on stdout for scripts, and a readable line each on stderr for
//! people (`summary`); `--annotate` draws the faces on a copy (`annotate`).

mod annotate;
mod draw;
mod summary;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use futures::stream::{self, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use uuid::Uuid;

use super::setup::start_engine;
use super::AdapterChoice;
use crate::domain::{FaceMode, Verdict};
use crate::engine::analyze::{analyze_bytes, Stages};
use crate::engine::{Engine, Tasks};
use crate::intake::Intake;
use annotate::Annotator;

#[derive(Args)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    adapter: AdapterChoice,
    /// Always generate the artifact description (default: only when p_fake >= analysis.explain_threshold).
    #[arg(long)]
    explain: bool,
    /// A question to answer about each image; repeat for a conversation.
    #[arg(long = "question", value_name = "TEXT")]
    questions: Vec<String>,
    /// Find faces and analyse each one (detect), fall back to the whole image when none is found
    /// (whole_image), or take each image as a face crop already (off). Default: faces.mode.
    #[arg(long, value_name = "MODE", value_parser = parse_face_mode)]
    faces: Option<FaceMode>,
    /// Write each image with its face boxes and p_fake drawn on it to
    /// OUT_DIR/<file stem>.faces.png (created if missing).
    #[arg(long, value_name = "OUT_DIR")]
    annotate: Option<PathBuf>,
    /// No readable line per image on stderr (the JSON lines on stdout stay).
    #[arg(long, short)]
    quiet: bool,
    /// Image files (JPEG, PNG, WebP, GIF, BMP).
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
}

pub async fn run(config_dir: &Path, args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    // A wrong --annotate path fails before the model loads.
    let annotator = match &args.annotate {
        Some(dir) => Some(Annotator::prepare(dir, &args.images)?),
        None => None,
    };
    let loaded = start_engine(config_dir, &args.adapter).await?;
    let settings = &loaded.settings;
    let engine = &loaded.engine;
    // One decode budget for every image this command decodes at once.
    let intake = &Intake::new(&settings.image);
    let faces = &match args.faces {
        Some(mode) => loaded.faces.with_mode(mode),
        None => loaded.faces.clone(),
    };
    let stages = Stages {
        intake,
        analysis: &settings.analysis,
        faces,
    };
    let tasks = Tasks::requested(
        args.explain,
        settings.analysis.explain_threshold,
        args.questions.clone(),
    );
    // Twice the engine's capacity keeps its queue fed while results print.
    let concurrency = engine.info().capacity * 2;
    let progress = ProgressBar::new(args.images.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let annotator = annotator.as_ref();
    let mut failures = 0usize;
    let mut results = stream::iter(args.images.iter().enumerate())
        .map(|(index, path)| {
            let tasks = tasks.clone();
            async move {
                let outcome = one_image(path, index, tasks, engine, stages, annotator).await;
                (path, outcome)
            }
        })
        .buffered(concurrency);
    let stdout = std::io::stdout();
    while let Some((path, outcome)) = results.next().await {
        let (line, readable, ok) = render(path, outcome);
        failures += usize::from(!ok);
        {
            let mut out = stdout.lock();
            writeln!(out, "{line}")?;
            out.flush()?;
        }
        if !args.quiet {
            // Above the progress bar, which redraws below it.
            progress.suspend(|| eprintln!("{readable}"));
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    if failures > 0 {
        eprintln!("dfa: {failures} of {} images failed", args.images.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads, analyses and (with --annotate) draws input number `index`.
async fn one_image(
    path: &Path,
    index: usize,
    tasks: Tasks,
    engine: &Engine,
    stages: Stages<'_>,
    annotator: Option<&Annotator>,
) -> Outcome {
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => Arc::new(bytes),
        Err(e) => return Outcome::Failed("io", format!("cannot read {}: {e}", path.display())),
    };
    let verdict = match analyze_bytes(engine, Uuid::new_v4(), bytes.clone(), tasks, stages).await {
        Ok(verdict) => verdict,
        Err(e) => return Outcome::Failed(e.kind(), e.to_string()),
    };
    let annotated = match annotator {
        Some(a) => Some(
            a.write(index, stages.intake, bytes, &verdict)
                .await
                .map_err(|e| e.to_string()),
        ),
        None => None,
    };
    Outcome::Analysed(Box::new(verdict), annotated)
}

/// The JSON line for stdout, the readable line for stderr, and whether
/// the image went through.
fn render(path: &Path, outcome: Outcome) -> (serde_json::Value, String, bool) {
    match outcome {
        Outcome::Analysed(verdict, annotated) => {
            let mut readable = summary::verdict_line(path, &verdict);
            match annotated {
                None => {
                    let line = json!({"image": path, "ok": true, "verdict": verdict});
                    (line, readable, true)
                }
                Some(Ok(file)) => {
                    readable.push_str(&format!(" -> {}", file.display()));
                    let line =
                        json!({"image": path, "ok": true, "verdict": verdict, "annotated": file});
                    (line, readable, true)
                }
                // The verdict stands; the line says what is missing.
                Some(Err(message)) => {
                    readable.push_str(&format!("; not annotated: {message}"));
                    let line = json!({"image": path, "ok": false, "verdict": verdict,
                                      "error": {"kind": "annotate", "message": message}});
                    (line, readable, false)
                }
            }
        }
        Outcome::Failed(kind, message) => {
            let readable = format!("{}: failed ({kind}): {message}", path.display());
            let line =
                json!({"image": path, "ok": false, "error": {"kind": kind, "message": message}});
            (line, readable, false)
        }
    }
}

/// One image's result: its verdict (and, with --annotate, the file drawn
/// or why not), or why there is none.
enum Outcome {
    Analysed(Box<Verdict>, Option<Result<PathBuf, String>>),
    Failed(&'static str, String),
}

fn parse_face_mode(s: &str) -> Result<FaceMode, String> {
    s.parse::<FaceMode>()
        .map_err(|_| format!("`{s}`: expected off, detect or whole_image"))
}
