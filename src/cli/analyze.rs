//! `dfa analyze`: every image is attempted; one JSON line each, in input order.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use futures::stream::{self, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use uuid::Uuid;

use super::setup::start_engine;
use super::AdapterChoice;
use crate::domain::FaceMode;
use crate::engine::analyze::{analyze_bytes, Stages};
use crate::engine::Tasks;
use crate::intake::Intake;

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
    /// Image files (JPEG, PNG, WebP, GIF, BMP).
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
}

pub async fn run(config_dir: &Path, args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
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
    let mut failures = 0usize;
    let mut results = stream::iter(args.images.iter())
        .map(|path| {
            let tasks = tasks.clone();
            async move {
                let outcome = match tokio::fs::read(path).await {
                    Ok(bytes) => analyze_bytes(
                        engine,
                        Uuid::new_v4(),
                        std::sync::Arc::new(bytes),
                        tasks,
                        stages,
                    )
                    .await
                    .map_err(|e| (e.kind(), e.to_string())),
                    Err(e) => Err(("io", format!("cannot read {}: {e}", path.display()))),
                };
                (path, outcome)
            }
        })
        .buffered(concurrency);
    let stdout = std::io::stdout();
    while let Some((path, outcome)) = results.next().await {
        let line = match outcome {
            Ok(verdict) => json!({"image": path, "ok": true, "verdict": verdict}),
            Err((kind, message)) => {
                failures += 1;
                json!({"image": path, "ok": false, "error": {"kind": kind, "message": message}})
            }
        };
        let mut out = stdout.lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        progress.inc(1);
    }
    progress.finish_and_clear();
    if failures > 0 {
        eprintln!("dfa: {failures} of {} images failed", args.images.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_face_mode(s: &str) -> Result<FaceMode, String> {
    s.parse::<FaceMode>()
        .map_err(|_| format!("`{s}`: expected off, detect or whole_image"))
}
