//! The reference for engine overhead: the same work as a screening request
//! (prefix + image, detection question, classification question, the four
//! answers scored) as a plain sequential llama.cpp loop on one sequence.

use std::ffi::CString;
use std::num::NonZeroU32;
use std::time::Instant;

use anyhow::{anyhow, Context};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::mtmd::{
    mtmd_default_marker, MtmdBitmap, MtmdContext, MtmdContextParams, MtmdInputText,
};
use llama_cpp_2::token::LlamaToken;

use crate::engine::scoring::{log_prob, yes_probability};
use crate::engine::{backend, EngineConfig};
use crate::intake::DecodedImage;

/// Returns images/s.
pub fn run(config: &EngineConfig, images: &[DecodedImage]) -> anyhow::Result<f64> {
    let backend = backend()?;
    let model = LlamaModel::load_from_file(backend, &config.gguf, &LlamaModelParams::default())?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get() as i32)
        .unwrap_or(1);
    let marker = mtmd_default_marker();
    let mparams = MtmdContextParams {
        use_gpu: false,
        print_timings: false,
        n_threads: threads,
        media_marker: CString::new(marker)?,
        image_min_tokens: -1,
        image_max_tokens: -1,
    };
    let mmproj = config
        .mmproj
        .to_str()
        .ok_or_else(|| anyhow!("mmproj path is not UTF-8"))?;
    let mut mtmd = MtmdContext::init_from_file(mmproj, &model, &mparams)?;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(4096))
        .with_n_batch(config.engine.n_batch)
        .with_n_ubatch(config.engine.n_batch)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = model.new_context(backend, params)?;

    let p = &config.prompts;
    let v = &p.chat;
    let render = |q: &str| {
        v.render(&crate::domain::prompts::conversation(
            &v.system,
            marker,
            &[],
            q,
        ))
    };
    let detect = render(&p.detection.question);
    let classify = render(&p.classification.question);
    let (pre, detect_post) =
        crate::domain::prompts::split_at_marker(&detect, marker).context("marker")?;
    let (_, classify_post) =
        crate::domain::prompts::split_at_marker(&classify, marker).context("marker")?;
    let tok = |s: &str| model.vocab().tokenize(s.as_bytes(), false, true);
    let detect_tokens = tok(detect_post);
    let classify_tokens = tok(classify_post);
    let yes = tok(&p.detection.yes)[0];
    let no = tok(&p.detection.no)[0];
    let answers: Vec<Vec<LlamaToken>> = p
        .classification
        .answers
        .as_array()
        .iter()
        .map(|a| tok(a))
        .collect();
    let mut batch = LlamaBatch::new(config.engine.n_batch as usize, 1);

    let started = Instant::now();
    let mut checksum = 0.0f64;
    for img in images {
        ctx.clear_kv_cache();
        let bitmap = MtmdBitmap::from_image_data(img.width(), img.height(), img.rgb())?;
        let text = MtmdInputText {
            text: format!("{pre}{marker}"),
            add_special: true,
            parse_special: true,
        };
        let chunks = mtmd.tokenize(text, &[&bitmap])?;
        let n = chunks.eval_chunks(
            &mut mtmd,
            &mut ctx,
            0,
            0,
            config.engine.n_batch as i32,
            false,
        )?;

        let logits = decode(&mut ctx, &mut batch, &detect_tokens, n, false)?;
        checksum += yes_probability(&logits[0], yes.0 as usize, no.0 as usize) as f64;
        ctx.clear_kv_cache_seq(Some(0), Some(n as u32), None)?;

        let first = decode(&mut ctx, &mut batch, &classify_tokens, n, false)?;
        let m = n + classify_tokens.len() as i32;
        for answer in &answers {
            let mut lp = log_prob(&first[0], answer[0].0 as usize);
            if answer.len() > 1 {
                let steps = decode(&mut ctx, &mut batch, &answer[..answer.len() - 1], m, true)?;
                for (i, l) in steps.iter().enumerate() {
                    lp += log_prob(l, answer[i + 1].0 as usize);
                }
                ctx.clear_kv_cache_seq(Some(0), Some(m as u32), None)?;
            }
            checksum += lp;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    tracing::debug!(checksum, "bare loop");
    Ok(images.len() as f64 / elapsed)
}

/// Decodes `tokens` on sequence 0 from `pos`; returns the logits of the last
/// token, or of every token when `all`.
fn decode(
    ctx: &mut LlamaContext,
    batch: &mut LlamaBatch,
    tokens: &[LlamaToken],
    pos: i32,
    all: bool,
) -> anyhow::Result<Vec<Vec<f32>>> {
    batch.clear();
    for (i, &t) in tokens.iter().enumerate() {
        batch.add(t, pos + i as i32, &[0], all || i + 1 == tokens.len())?;
    }
    ctx.decode(batch)?;
    let range = if all {
        0..tokens.len()
    } else {
        tokens.len() - 1..tokens.len()
    };
    Ok(range
        .map(|i| ctx.get_logits_ith(i as i32).to_vec())
        .collect())
}
