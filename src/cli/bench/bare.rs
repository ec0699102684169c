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

use crate::engine::llama::backend;
use crate::engine::scoring::{log_prob, yes_probability};
use crate::engine::EngineConfig;
use crate::intake::DecodedImage;

/// Returns images/s.
pub fn run(config: &EngineConfig, images: &[DecodedImage]) -> anyhow::Result<f64> {
    let model = LlamaModel::load_from_file(backend()?, &config.gguf, &LlamaModelParams::default())?;
    let mut bare = Bare::new(config, &model)?;
    let prompt = Prompt::tokenize(config, &model)?;

    let started = Instant::now();
    let mut checksum = 0.0f64;
    for img in images {
        let scores = bare.screen(&prompt, img)?;
        checksum += scores.detection;
        for lp in scores.answers {
            checksum += lp;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    tracing::debug!(checksum, "bare loop");
    Ok(images.len() as f64 / elapsed)
}

/// The screening prompt as tokens: the text before the image, then each
/// question's tail after it, and the answers to score.
struct Prompt {
    pre: String,
    detect: Vec<LlamaToken>,
    classify: Vec<LlamaToken>,
    yes: LlamaToken,
    no: LlamaToken,
    answers: Vec<Vec<LlamaToken>>,
}

impl Prompt {
    fn tokenize(config: &EngineConfig, model: &LlamaModel) -> anyhow::Result<Prompt> {
        let marker = mtmd_default_marker();
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
        Ok(Prompt {
            pre: pre.to_string(),
            detect: tok(detect_post),
            classify: tok(classify_post),
            yes: tok(&p.detection.yes)[0],
            no: tok(&p.detection.no)[0],
            answers: p
                .classification
                .answers
                .as_array()
                .iter()
                .map(|a| tok(a))
                .collect(),
        })
    }
}

/// What one screening request computes; summed into a checksum that keeps
/// the work from being optimised away.
struct Scores {
    /// P(yes) of the detection question.
    detection: f64,
    /// Log-probability of each classification answer.
    answers: Vec<f64>,
}

/// One llama.cpp context with its image encoder, on sequence 0.
struct Bare<'m> {
    // Fields drop in this order (batch, context, encoder), as the locals of
    // the loop did before it was split up.
    batch: LlamaBatch<'m>,
    ctx: LlamaContext<'m>,
    mtmd: MtmdContext,
    n_batch: i32,
}

impl<'m> Bare<'m> {
    fn new(config: &EngineConfig, model: &'m LlamaModel) -> anyhow::Result<Bare<'m>> {
        let threads = super::threads() as i32;
        let mparams = MtmdContextParams {
            use_gpu: false,
            print_timings: false,
            n_threads: threads,
            media_marker: CString::new(mtmd_default_marker())?,
            image_min_tokens: -1,
            image_max_tokens: -1,
        };
        let mmproj = config
            .mmproj
            .to_str()
            .ok_or_else(|| anyhow!("mmproj path is not UTF-8"))?;
        let mtmd = MtmdContext::init_from_file(mmproj, model, &mparams)?;
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(4096))
            .with_n_batch(config.engine.n_batch)
            .with_n_ubatch(config.engine.n_batch)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let ctx = model.new_context(backend()?, params)?;
        Ok(Bare {
            batch: LlamaBatch::new(config.engine.n_batch as usize, 1),
            ctx,
            mtmd,
            n_batch: config.engine.n_batch as i32,
        })
    }

    /// One screening request on `img`.
    fn screen(&mut self, prompt: &Prompt, img: &DecodedImage) -> anyhow::Result<Scores> {
        self.ctx.clear_kv_cache();
        let n = self.eval_image(&prompt.pre, img)?;

        let logits = self.decode(&prompt.detect, n, false)?;
        let detection =
            yes_probability(&logits[0], prompt.yes.0 as usize, prompt.no.0 as usize) as f64;
        self.ctx.clear_kv_cache_seq(Some(0), Some(n as u32), None)?;

        let first = self.decode(&prompt.classify, n, false)?;
        let m = n + prompt.classify.len() as i32;
        let mut answers = Vec::with_capacity(prompt.answers.len());
        for answer in &prompt.answers {
            answers.push(self.answer_log_prob(&first[0], answer, m)?);
        }
        Ok(Scores { detection, answers })
    }

    /// Evaluates the text before the image and the image; returns the
    /// position after them.
    fn eval_image(&mut self, pre: &str, img: &DecodedImage) -> anyhow::Result<i32> {
        let bitmap = MtmdBitmap::from_image_data(img.width(), img.height(), img.rgb())?;
        let text = MtmdInputText {
            text: format!("{pre}{}", mtmd_default_marker()),
            add_special: true,
            parse_special: true,
        };
        let chunks = self.mtmd.tokenize(text, &[&bitmap])?;
        Ok(chunks.eval_chunks(&mut self.mtmd, &mut self.ctx, 0, 0, self.n_batch, false)?)
    }

    /// Log-probability of `answer` after the classification question that
    /// ends at `pos`, whose last logits are `first`.
    fn answer_log_prob(
        &mut self,
        first: &[f32],
        answer: &[LlamaToken],
        pos: i32,
    ) -> anyhow::Result<f64> {
        let mut lp = log_prob(first, answer[0].0 as usize);
        if answer.len() > 1 {
            let steps = self.decode(&answer[..answer.len() - 1], pos, true)?;
            for (i, l) in steps.iter().enumerate() {
                lp += log_prob(l, answer[i + 1].0 as usize);
            }
            self.ctx
                .clear_kv_cache_seq(Some(0), Some(pos as u32), None)?;
        }
        Ok(lp)
    }

    /// Decodes `tokens` on sequence 0 from `pos`; returns the logits of the
    /// last token, or of every token when `all`.
    fn decode(
        &mut self,
        tokens: &[LlamaToken],
        pos: i32,
        all: bool,
    ) -> anyhow::Result<Vec<Vec<f32>>> {
        self.batch.clear();
        for (i, &t) in tokens.iter().enumerate() {
            self.batch
                .add(t, pos + i as i32, &[0], all || i + 1 == tokens.len())?;
        }
        self.ctx.decode(&mut self.batch)?;
        let range = if all {
            0..tokens.len()
        } else {
            tokens.len() - 1..tokens.len()
        };
        Ok(range
            .map(|i| self.ctx.get_logits_ith(i as i32).to_vec())
            .collect())
    }
}
