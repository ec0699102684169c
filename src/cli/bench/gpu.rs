//! `dfa bench --gpu`: the figures scripts/gpu-bench collects on a GPU
//! machine, as one JSON object on stdout: screening images/s at 1, 8 and 32
//! requests in flight, the description always generated at 32, the time to
//! the first token of a follow-up question (cold: a new image; warm: the
//! same image again, from the conversation cache), and the devices' memory.
//! docs/BENCHMARKS.md is written from them with the card's name, by hand:
//! a run on another machine must not overwrite the CPU figures.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use tokio::sync::mpsc;

use super::engine::{measure, Throughput};
use super::{pictures, BenchArgs};
use crate::domain::prompts::Turn;
use crate::engine::{
    devices, llama, AnalysisRequest, Backend, Engine, EngineConfig, Explain, Tasks,
};
use crate::intake::DecodedImage;
use crate::settings::Settings;

/// Requests in flight for screening; the first is the batching baseline.
const CONCURRENCIES: [usize; 3] = [1, 8, 32];
const FULL_CONCURRENCY: usize = 32;
/// Images asked a cold and a warm follow-up question each.
const FOLLOW_UPS: usize = 4;

pub(super) async fn run(
    settings: &Settings,
    config: EngineConfig,
    args: &BenchArgs,
) -> anyhow::Result<ExitCode> {
    let images = pictures::decoded(args.images.max(FULL_CONCURRENCY), &settings.image)?;
    let config = sized(config, args.explain_tokens);
    llama::backend_in(config.engine.backends_dir()).context("initialising llama.cpp")?;
    let before = memory_used();
    let started = Instant::now();
    let engine = Engine::start(config).await.context("starting the engine")?;
    let load_s = started.elapsed().as_secs_f64();
    let info = engine.info().clone();
    let screen = Tasks {
        explain: Explain::Never,
        ..Tasks::screening(1.0)
    };
    measure(&engine, &images[..2], &screen, 2).await?;

    let mut screening = Vec::new();
    for conc in CONCURRENCIES {
        eprintln!("bench --gpu: screening, {conc} in flight");
        let t = measure(&engine, &images, &screen, conc).await?;
        screening.push(json!({"in_flight": conc, "images_per_s": t.images_per_s}));
    }
    eprintln!("bench --gpu: description always generated, {FULL_CONCURRENCY} in flight");
    let full_tasks = Tasks {
        explain: Explain::Always,
        ..Tasks::screening(1.0)
    };
    let full: Throughput = measure(&engine, &images, &full_tasks, FULL_CONCURRENCY).await?;
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for (i, image) in images.iter().take(FOLLOW_UPS).enumerate() {
        let key = format!("bench-gpu-{i}");
        let first = "Which region shows the strongest artifacts?";
        let (seconds, answer) = first_token(&engine, image, &key, &[], first).await?;
        cold.push(seconds);
        // The next question carries the conversation so far, as `dfa serve`
        // sends it: its prefix is the cached state of the first.
        let history = [Turn {
            question: first.to_string(),
            answer,
        }];
        let next = "Is the lighting consistent?";
        let (seconds, _) = first_token(&engine, image, &key, &history, next).await?;
        warm.push(seconds);
    }
    let after = memory_used();
    let per_s = |c: usize| {
        screening
            .iter()
            .find(|r| r["in_flight"] == c)
            .and_then(|r| r["images_per_s"].as_f64())
            .unwrap_or(f64::NAN)
    };
    let figures = json!({
        "devices": devices::list().iter().map(|d| json!({
            "name": d.name, "description": d.description, "gpu": d.gpu,
            "memory_total_mib": d.memory_total >> 20,
        })).collect::<Vec<_>>(),
        "gpu_build": cfg!(feature = "gpu"),
        "image_tokens": info.image_tokens,
        "n_vocab": info.n_vocab,
        "capacity": info.capacity,
        "images": images.len(),
        "load_s": load_s,
        "screening": screening,
        "batching_gain_32_over_1": per_s(32) / per_s(1),
        "full": {
            "in_flight": FULL_CONCURRENCY,
            "explain_tokens": args.explain_tokens,
            "images_per_s": full.images_per_s,
            "tokens": full.tokens,
        },
        "follow_up_first_token_s": {"cold": cold, "warm": warm},
        "memory_used_mib": {"before_load": before, "after": after},
    });
    println!("{}", serde_json::to_string_pretty(&figures)?);
    Ok(ExitCode::SUCCESS)
}

/// Room for 32 requests in flight, each with its image, the screening turns
/// and a full description.
fn sized(mut config: EngineConfig, explain_tokens: u32) -> EngineConfig {
    config.engine.max_in_flight = FULL_CONCURRENCY as u32;
    config.engine.n_seq_max = FULL_CONCURRENCY as u32 * crate::engine::SEQS_PER_REQUEST;
    config.engine.n_ctx = 32768;
    config.max_explain_tokens = explain_tokens;
    config
}

/// Memory in use on each GPU (MiB), as llama.cpp's devices report it.
fn memory_used() -> Vec<serde_json::Value> {
    devices::list()
        .iter()
        .filter(|d| d.gpu)
        .map(|d| json!({"device": d.name, "used_mib": (d.memory_total - d.memory_free) >> 20}))
        .collect()
}

/// Seconds until the first piece of the answer to `question` about `image`
/// (after `history`) streams out, and the answer; the conversation is kept
/// under `key`.
async fn first_token(
    engine: &Engine,
    image: &DecodedImage,
    key: &str,
    history: &[Turn],
    question: &str,
) -> anyhow::Result<(f64, String)> {
    let (tx, mut rx) = mpsc::channel(64);
    let tasks = Tasks {
        screen: false,
        explain: Explain::Never,
        history: history.to_vec(),
        questions: vec![question.to_string()],
        image_key: Some(key.to_string()),
        stream: Some(tx),
        ..Tasks::screening(1.0)
    };
    let started = Instant::now();
    let request = engine.analyze(AnalysisRequest {
        image: image.clone(),
        tasks,
    });
    tokio::pin!(request);
    let mut first = None;
    let mut answer = None;
    while answer.is_none() {
        tokio::select! {
            piece = rx.recv(), if first.is_none() => {
                if piece.is_some() {
                    first = Some(started.elapsed().as_secs_f64());
                }
            }
            done = &mut request => answer = Some(done?),
        }
    }
    let analysis = answer.context("the request ended without an answer")?;
    let text = analysis
        .answers
        .last()
        .map(|a| a.answer.clone())
        .unwrap_or_default();
    // An answer with no streamed piece (empty) counts at its end.
    Ok((
        first.unwrap_or_else(|| started.elapsed().as_secs_f64()),
        text,
    ))
}
