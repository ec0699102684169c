//! Continuous batching. Each request becomes a job: its shared prefix (system
//! prompt and image) lives on a root sequence; each task is a branch, a
//! sequence that starts as a copy of that prefix in the unified KV cache.
//! Every step decodes the pending tokens of all branches of all jobs in one
//! `llama_batch`; branches join and leave between steps.
//!
//! - `prepare`: request → job (tokens, image chunks, KV cells needed)
//! - `seqs`: admission (sequence blocks, KV cells) and per-job branch sequences
//! - `job`: one job's state and its final `Analysis`
//! - `batch`: which pending tokens go into the next decode
//! - `branches`: the tasks as branches, and what each decode's logits mean
//! - `cache` / `reuse`: the conversation cache (KV states saved to host
//!   memory by image key) and restoring a job from it
//! - `stream` / `retire`: answer pieces for the caller, cancellation, and
//!   replying to finished jobs

mod batch;
mod branches;
mod cache;
mod job;
mod prepare;
mod retire;
mod reuse;
mod seqs;
mod stream;

use std::time::Instant;

use llama_cpp_2::context::session::SeqState;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::mtmd::MtmdContext;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::oneshot;

use cache::ConversationCache;
pub(crate) use job::Job;
use job::Stage;
use seqs::Admission;

use super::render::ChatFormat;
use super::{Analysis, EngineError};
use crate::domain::prompts::Prompts;
use crate::domain::ModelIdentity;

/// What stays fixed while a model is loaded.
pub(crate) struct Shared {
    pub format: ChatFormat,
    pub prompts: Prompts,
    pub marker: String,
    pub yes: LlamaToken,
    pub no: LlamaToken,
    pub candidates: [Vec<LlamaToken>; 4],
    pub max_explain: usize,
    pub max_answer: usize,
    pub n_batch: usize,
    pub n_ctx: usize,
    pub max_jobs: usize,
    /// KV positions of one image (fixed for LLaVA-style projectors).
    pub image_tokens: usize,
    /// `engine.conversation_cache_bytes`
    pub cache_bytes: usize,
}

pub(crate) type Reply = oneshot::Sender<Result<Analysis, EngineError>>;

pub(crate) struct Scheduler<'a, 'm> {
    pub model: &'m LlamaModel,
    pub ctx: &'a mut LlamaContext<'m>,
    pub mtmd: &'a mut MtmdContext,
    pub shared: &'a Shared,
    pub identity: ModelIdentity,
    jobs: Vec<Job>,
    /// Finished jobs whose streamed answer the caller has not taken in
    /// whole yet; they hold no sequences, only their reply.
    draining: Vec<Job>,
    admission: Admission,
    batch: LlamaBatch<'static>,
    /// KV states of recent conversations; valid for `identity` only.
    cache: ConversationCache<SeqState>,
}

impl<'a, 'm> Scheduler<'a, 'm> {
    pub fn new(
        model: &'m LlamaModel,
        ctx: &'a mut LlamaContext<'m>,
        mtmd: &'a mut MtmdContext,
        shared: &'a Shared,
        identity: ModelIdentity,
    ) -> Self {
        Scheduler {
            model,
            ctx,
            mtmd,
            shared,
            identity,
            jobs: Vec::new(),
            draining: Vec::new(),
            admission: Admission::new(shared.max_jobs, shared.n_ctx),
            batch: LlamaBatch::new(shared.n_batch, 1),
            cache: ConversationCache::new(shared.cache_bytes),
        }
    }

    pub fn is_idle(&self) -> bool {
        self.jobs.is_empty() && self.draining.is_empty()
    }

    /// The KV of another adapter means nothing to the next one.
    pub fn forget_conversations(&mut self) {
        self.cache.clear();
    }

    /// Whether a prepared job may start now: it fits (sequence ids and KV
    /// cells), or nobody waits for it any more (it takes nothing then).
    pub fn can_start(&self, job: &Job) -> bool {
        job.is_abandoned() || self.admission.can_start(job.kv_cells)
    }

    /// Starts a prepared job; call only after `can_start` said yes.
    pub fn start(&mut self, mut job: Job) {
        if job.is_abandoned() {
            // Answered at the next step, before anything is decoded for it.
            job.error = Some(EngineError::Cancelled);
            self.jobs.push(job);
            return;
        }
        let leased = match self.admission.start(job.kv_cells) {
            Some(lease) => {
                job.begin(lease);
                true
            }
            // Retired (and answered) at the next step.
            None => {
                job.error = Some(EngineError::Inference("no free sequence ids".into()));
                false
            }
        };
        self.jobs.push(job);
        if leased {
            self.restore_or_tokenize(self.jobs.len() - 1);
        }
    }

    /// Runs one scheduling step: at most one image through the vision tower,
    /// then one batched decode of every branch's pending tokens.
    pub fn step(&mut self) {
        self.cancel_abandoned();
        self.encode_one_image();
        let decoded = self.decode_step();
        self.finish_jobs();
        self.drain(decoded);
    }

    fn encode_one_image(&mut self) {
        let Some(ji) = self
            .jobs
            .iter()
            .position(|j| matches!(j.stage, Stage::Image(_)) && j.error.is_none())
        else {
            return;
        };
        let n_batch = self.shared.n_batch as i32;
        let job = &mut self.jobs[ji];
        let Stage::Image(chunks) = std::mem::replace(&mut job.stage, Stage::Branches) else {
            return;
        };
        let started = Instant::now();
        let result =
            chunks.eval_chunks(self.mtmd, self.ctx, job.n_prefix, job.root, n_batch, false);
        job.timings.encode_image += ms(started);
        match result {
            Ok(n_past) => {
                job.n_prefix = n_past;
                self.start_branches(ji);
            }
            Err(e) => job.error = Some(EngineError::Image(e.to_string())),
        }
    }

    /// Moves jobs whose prefix text is decoded on to the image stage.
    fn advance_stages(&mut self) {
        for job in &mut self.jobs {
            if matches!(job.stage, Stage::PrefixText) {
                let root = &mut job.branches[0];
                if root.remaining() == 0 && !root.done {
                    root.done = true;
                    job.n_prefix = root.pos;
                    if let Some(chunks) = job.parked.take() {
                        job.stage = Stage::Image(chunks);
                    }
                }
            }
        }
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}
