//! `dfa bench --serve`, the follow-up half: time to the first streamed
//! token of a reviewer's question, cold (the first question on a verdict:
//! vision tower, prefix and verdict turns decoded) against warm (the next
//! question on the same verdict: restored from the conversation cache),
//! through the real HTTP route and its SSE stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use uuid::Uuid;

use super::report::Section;
use crate::domain::access::{NewToken, Role};
use crate::domain::sha256_hex;
use crate::serve::App;

pub(super) const SECTION: Section = Section {
    key: "serve-follow-ups",
    title: "Serve: time to first token of a follow-up, cold vs warm (`dfa bench --serve`)",
    command: "scripts/bench --serve",
};

pub(super) struct FollowUpFigures {
    pub verdicts: usize,
    /// Seconds to the first `token` event, one per verdict.
    pub cold: Vec<f64>,
    pub warm: Vec<f64>,
}

/// Seeds one stored verdict per picture (its image in the store), then asks
/// two questions about each through `base` (a running `dfa serve`).
pub(super) async fn measure(
    app: &Arc<App>,
    base: &str,
    pngs: &[Vec<u8>],
) -> anyhow::Result<FollowUpFigures> {
    let token = NewToken::generate();
    app.store
        .create_token("bench", Role::Reviewer, None, &token.sha256)
        .await?;
    let http = reqwest::Client::new();
    let mut figures = FollowUpFigures {
        verdicts: pngs.len(),
        cold: Vec::new(),
        warm: Vec::new(),
    };
    for png in pngs {
        let id = seed_verdict(app, png).await?;
        let url = format!("{base}/api/verdicts/{id}/questions");
        let ask = |q: &'static str| first_token(&http, &url, &token.secret, q);
        figures
            .cold
            .push(ask("Which region shows the strongest artifacts?").await?);
        figures
            .warm
            .push(ask("Is the lighting consistent with the background?").await?);
    }
    Ok(figures)
}

/// Seconds from sending the question to its first `token` event; the
/// stream is then read to its end so that the answer is stored.
async fn first_token(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    question: &str,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let response = http
        .post(url)
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .header("content-type", "application/json")
        .body(serde_json::json!({ "question": question }).to_string())
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .context("asking a follow-up")?
        .error_for_status()
        .context("the follow-up was refused")?;
    let mut body = response.bytes_stream();
    let mut seen = Vec::new();
    let mut first = None;
    while let Some(chunk) = body.next().await {
        seen.extend_from_slice(&chunk.context("reading the stream")?);
        if first.is_none() && contains(&seen, b"event: token") {
            first = Some(started.elapsed().as_secs_f64());
        }
    }
    if contains(&seen, b"event: error") {
        anyhow::bail!("the follow-up failed: {}", String::from_utf8_lossy(&seen));
    }
    first.context("the answer streamed no token (raise analysis.max_answer_tokens?)")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A verdict as a worker would have stored it, and its image.
async fn seed_verdict(app: &Arc<App>, png: &[u8]) -> anyhow::Result<Uuid> {
    let sha = sha256_hex(png);
    app.images.put(&sha, Arc::new(png.to_vec())).await?;
    let id = Uuid::new_v4();
    let pool = app.store.pool();
    sqlx::query(
        "INSERT INTO images (sha256, byte_size, first_source) VALUES ($1, $2, 'bench') ON CONFLICT DO NOTHING",
    )
    .bind(&sha)
    .bind(png.len() as i64)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO verdicts (request_id, label, p_fake, forgery_type, type_scores, artifacts, explanation, \
            answers, image_sha256, image_source, base_model_sha256, mmproj_sha256, processing_ms, timings_ms, \
            source_topic, source_partition, source_offset, result, created_at) \
         VALUES ($1, 'fake', 0.9, 'face_swap', '{}'::jsonb, '[]'::jsonb, \
            '1. Eyes: the reflections in the two eyes differ.', '[]'::jsonb, $2, 'bench', 'b', 'm', 0, \
            '{}'::jsonb, 'bench', 0, 0, '{}'::json, now())",
    )
    .bind(id)
    .bind(&sha)
    .execute(pool)
    .await?;
    Ok(id)
}

pub(super) fn render(f: &FollowUpFigures) -> String {
    let ms = |xs: &[f64], p: f64| quantile(xs, p) * 1000.0;
    let (cold, warm) = (ms(&f.cold, 0.5), ms(&f.warm, 0.5));
    format!(
        "Bench-size model on the CPU ({threads} threads shared with other work); `dfa serve`'s router on a loopback port, one reviewer, SSE (`Accept: text/event-stream`), timed from sending the question to its first `token` event. {n} stored verdicts (generated 256x256 pictures, the verdict turns of a fake with an explanation); on each, a first question (cold: nothing of it in the engine, so the vision tower, the system prefix, the verdict turns and the question are decoded) then a second one (warm: the conversation's KV state restored from `engine.conversation_cache_bytes`, only the last answer and the new question decoded).\n\n| follow-up | p50 ms | p99 ms |\n|---|---:|---:|\n| cold (first question on a verdict) | {cold:.1} | {:.1} |\n| warm (the next question) | {warm:.1} | {:.1} |\n\nWarm is **{:.1}×** faster than cold at the median (target: at least 5×).\n",
        ms(&f.cold, 0.99),
        ms(&f.warm, 0.99),
        cold / warm,
        threads = super::threads(),
        n = f.verdicts,
    )
}

/// The `p`-quantile (0..=1) of `xs`, nearest rank.
pub(super) fn quantile(xs: &[f64], p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let xs = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(quantile(&xs, 0.5), 3.0);
        assert_eq!(quantile(&xs, 0.99), 5.0);
        assert_eq!(quantile(&xs, 0.0), 1.0);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
