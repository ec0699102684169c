//! Continuous batching. Each request becomes a job: its shared prefix (system
//! prompt and image) lives on a root sequence; each task is a branch, a
//! sequence that starts as a copy of that prefix in the unified KV cache.
//! Every step decodes the pending tokens of all branches of all jobs in one
//! `llama_batch`; branches join and leave between steps.

use std::time::Instant;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::mtmd::{MtmdBitmap, MtmdContext, MtmdInputChunks, MtmdInputText};
use llama_cpp_2::token::LlamaToken;
use tokio::sync::oneshot;

use super::render::ChatFormat;
use super::{Analysis, AnalysisRequest, EngineError, EngineTimings, Explain, Tasks};
use crate::prompts::{Prompts, Turn};
use crate::scoring::{argmax, log_prob, normalise, yes_probability};
use crate::settings::SEQS_PER_REQUEST;
use crate::verdict::{Answer, ModelIdentity, TypeScores};

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
}

pub(crate) type Reply = oneshot::Sender<Result<Analysis, EngineError>>;

enum Stage {
    /// The root's text prefix is queued as a branch.
    PrefixText,
    /// Prefix decoded; the image chunk waits for the vision tower.
    Image(MtmdInputChunks),
    /// Image in the KV cache; task branches run.
    Branches,
}

enum Kind {
    Prefix,
    Detect,
    Classify,
    Candidate {
        index: usize,
        tokens: Vec<LlamaToken>,
    },
    Explain {
        out: Vec<LlamaToken>,
    },
    Question {
        index: usize,
        out: Vec<LlamaToken>,
    },
}

struct Branch {
    seq: i32,
    pos: i32,
    pending: Vec<LlamaToken>,
    fed: usize,
    kind: Kind,
    done: bool,
}

impl Branch {
    fn wants_logits(&self, offset: usize) -> bool {
        match self.kind {
            Kind::Prefix => false,
            Kind::Candidate { .. } => true,
            _ => offset + 1 == self.pending.len(),
        }
    }
    fn is_generating(&self) -> bool {
        matches!(
            &self.kind,
            Kind::Explain { out } | Kind::Question { out, .. } if !out.is_empty()
        )
    }
}

pub(crate) struct Job {
    reply: Option<Reply>,
    submitted: Instant,
    tasks: Tasks,
    block: usize,
    free_seqs: Vec<i32>,
    root: i32,
    prefix: String,
    n_prefix: i32,
    stage: Stage,
    parked: Option<MtmdInputChunks>,
    branches: Vec<Branch>,
    kv_cells: usize,
    explain_decided: bool,
    p_fake: Option<f32>,
    detection_logits: Option<Vec<f32>>,
    candidate_lp: [f64; 4],
    candidates_left: usize,
    explanation: Option<String>,
    answers: Vec<Answer>,
    timings: EngineTimings,
    generated_tokens: usize,
    error: Option<EngineError>,
}

/// A decode's outcome for one branch, computed while the logits are borrowed
/// and applied afterwards (applying needs the context mutably).
enum Event {
    Detect {
        job: usize,
        p_fake: f32,
        logits: Option<Vec<f32>>,
    },
    Classify {
        job: usize,
        branch: usize,
        first: [f64; 4],
    },
    CandidateStep {
        job: usize,
        branch: usize,
        lp: f64,
        last: bool,
    },
    Token {
        job: usize,
        branch: usize,
        token: LlamaToken,
    },
}

pub(crate) struct Scheduler<'a, 'm> {
    pub model: &'m LlamaModel,
    pub ctx: &'a mut LlamaContext<'m>,
    pub mtmd: &'a mut MtmdContext,
    pub shared: &'a Shared,
    pub identity: ModelIdentity,
    jobs: Vec<Job>,
    free_blocks: Vec<usize>,
    kv_used: usize,
    batch: LlamaBatch<'static>,
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
            free_blocks: (0..shared.max_jobs).rev().collect(),
            kv_used: 0,
            batch: LlamaBatch::new(shared.n_batch, 1),
        }
    }

    pub fn is_idle(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Tokenizes a request and preprocesses its image; it holds no sequence
    /// or KV cells until `try_start`.
    pub fn prepare(
        &self,
        request: AnalysisRequest,
        submitted: Instant,
        reply: Reply,
    ) -> Result<Job, (Reply, EngineError)> {
        match self.prepare_inner(request, submitted) {
            Ok(mut job) => {
                job.reply = Some(reply);
                Ok(job)
            }
            Err(e) => Err((reply, e)),
        }
    }

    /// Whether a prepared job fits now (sequence ids and KV cells).
    pub fn can_start(&self, job: &Job) -> bool {
        !self.free_blocks.is_empty() && self.kv_used + job.kv_cells <= self.shared.n_ctx
    }

    /// Starts a prepared job; call only after `can_start` said yes.
    pub fn start(&mut self, mut job: Job) {
        let Some(block) = self.free_blocks.pop() else {
            job.error = Some(EngineError::Inference("no free sequence ids".into()));
            self.jobs.push(job);
            return;
        };
        let base = (block * SEQS_PER_REQUEST as usize) as i32;
        job.free_seqs = (base + 1..base + SEQS_PER_REQUEST as i32).rev().collect();
        job.root = base;
        job.branches[0].seq = base;
        job.block = block;
        self.kv_used += job.kv_cells;
        self.jobs.push(job);
    }

    fn prepare_inner(
        &self,
        request: AnalysisRequest,
        submitted: Instant,
    ) -> Result<Job, EngineError> {
        let sh = self.shared;
        let tasks = request.tasks;
        let first_question = first_question(&tasks, &sh.prompts);
        let (prefix, _) = self.render(&[], &first_question)?;
        let prefix_tokens = self.tokenize(&prefix, true);

        let img = request.image;
        let bitmap = MtmdBitmap::from_image_data(img.width(), img.height(), img.rgb())
            .map_err(|e| EngineError::Image(e.to_string()))?;
        let chunks = self
            .mtmd
            .tokenize(
                MtmdInputText {
                    text: sh.marker.clone(),
                    add_special: false,
                    parse_special: true,
                },
                &[&bitmap],
            )
            .map_err(|e| EngineError::Image(e.to_string()))?;
        let image_positions = chunks.total_positions() as usize;

        let kv_cells = prefix_tokens.len() + image_positions + self.task_cells(&tasks)?;
        if kv_cells > sh.n_ctx {
            return Err(EngineError::TooLong {
                needed: kv_cells,
                available: sh.n_ctx,
            });
        }
        let explain_decided = !(tasks.screen && matches!(tasks.explain, Explain::IfFake { .. }));
        Ok(Job {
            reply: None,
            submitted,
            block: usize::MAX,
            free_seqs: Vec::new(),
            root: -1,
            n_prefix: 0,
            stage: Stage::PrefixText,
            parked: Some(chunks),
            branches: vec![Branch {
                seq: -1,
                pos: 0,
                pending: prefix_tokens,
                fed: 0,
                kind: Kind::Prefix,
                done: false,
            }],
            prefix,
            kv_cells,
            explain_decided,
            p_fake: None,
            detection_logits: None,
            candidate_lp: [0.0; 4],
            candidates_left: if tasks.screen { 4 } else { 0 },
            explanation: None,
            answers: Vec::new(),
            timings: EngineTimings::default(),
            generated_tokens: 0,
            error: None,
            tasks,
        })
    }

    /// Upper bound on the KV cells a job's tasks use beyond the prefix.
    fn task_cells(&self, tasks: &Tasks) -> Result<usize, EngineError> {
        let sh = self.shared;
        let p = &sh.prompts;
        let mut cells = 0;
        if tasks.screen {
            cells += self.post_tokens(&[], &p.detection.question)?.len();
            cells += self.post_tokens(&[], &p.classification.question)?.len();
            cells += sh.candidates.iter().map(Vec::len).sum::<usize>();
        }
        if tasks.screen && tasks.explain != Explain::Never || tasks.explain == Explain::Always {
            cells += self.post_tokens(&[], &p.artifacts.question)?.len() + sh.max_explain;
        }
        if let Some(last) = tasks.questions.last() {
            // The last question is asked after all earlier ones; answers are
            // bounded by max_answer each.
            let mut history = tasks.history.clone();
            for q in &tasks.questions[..tasks.questions.len() - 1] {
                history.push(Turn {
                    question: q.clone(),
                    answer: String::new(),
                });
            }
            cells +=
                self.post_tokens(&history, last)?.len() + tasks.questions.len() * sh.max_answer;
        }
        Ok(cells)
    }

    fn render(&self, history: &[Turn], question: &str) -> Result<(String, String), EngineError> {
        let sh = self.shared;
        sh.format.render(
            self.model,
            &sh.prompts.chat.system,
            &sh.marker,
            history,
            question,
        )
    }

    fn post_tokens(
        &self,
        history: &[Turn],
        question: &str,
    ) -> Result<Vec<LlamaToken>, EngineError> {
        let (_, post) = self.render(history, question)?;
        Ok(self.tokenize(&post, false))
    }

    fn tokenize(&self, text: &str, add_bos: bool) -> Vec<LlamaToken> {
        self.model.vocab().tokenize(text.as_bytes(), add_bos, true)
    }

    fn detokenize(&self, tokens: &[LlamaToken]) -> String {
        let vocab = self.model.vocab();
        let mut bytes = Vec::new();
        for &t in tokens {
            vocab.token_to_piece_into(t, &mut bytes, false, None);
        }
        String::from_utf8_lossy(&bytes).trim().to_string()
    }

    /// Runs one scheduling step: at most one image through the vision tower,
    /// then one batched decode of every branch's pending tokens.
    pub fn step(&mut self) {
        self.encode_one_image();
        self.decode_step();
        self.finish_jobs();
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

    fn start_branches(&mut self, ji: usize) {
        let sh = self.shared;
        let tasks = self.jobs[ji].tasks.clone();
        let spawn = |this: &mut Self, question: &str, kind: Kind| {
            if let Err(e) = this.spawn(ji, &[], question, kind) {
                this.jobs[ji].error = Some(e);
            }
        };
        if tasks.screen {
            spawn(self, &sh.prompts.detection.question, Kind::Detect);
            spawn(self, &sh.prompts.classification.question, Kind::Classify);
        }
        if tasks.explain == Explain::Always {
            spawn(
                self,
                &sh.prompts.artifacts.question,
                Kind::Explain { out: Vec::new() },
            );
        }
        if let Some(q) = tasks.questions.first() {
            let history = tasks.history.clone();
            if let Err(e) = self.spawn(
                ji,
                &history,
                q,
                Kind::Question {
                    index: 0,
                    out: Vec::new(),
                },
            ) {
                self.jobs[ji].error = Some(e);
            }
        }
    }

    /// Starts a branch on a fresh sequence holding a copy of the job's prefix.
    fn spawn(
        &mut self,
        ji: usize,
        history: &[Turn],
        question: &str,
        kind: Kind,
    ) -> Result<(), EngineError> {
        let (pre, post) = self.render(history, question)?;
        let job = &self.jobs[ji];
        if pre != job.prefix {
            return Err(EngineError::Prompt(
                "the chat template renders different text before the image for different tasks"
                    .into(),
            ));
        }
        let tokens = self.tokenize(&post, false);
        let job = &mut self.jobs[ji];
        let seq = job
            .free_seqs
            .pop()
            .ok_or_else(|| EngineError::Inference("out of sequence ids".into()))?;
        self.ctx
            .copy_kv_cache_seq(job.root, seq, None, Some(job.n_prefix as u32))
            .map_err(|e| EngineError::Inference(e.to_string()))?;
        job.branches.push(Branch {
            seq,
            pos: job.n_prefix,
            pending: tokens,
            fed: 0,
            kind,
            done: false,
        });
        Ok(())
    }

    fn decode_step(&mut self) {
        self.batch.clear();
        let mut budget = self.shared.n_batch;
        // (batch index, job, branch, offset in pending)
        let mut outputs: Vec<(i32, usize, usize, usize)> = Vec::new();
        // (job, generated) for timing attribution
        let mut served: Vec<(usize, bool)> = Vec::new();
        'jobs: for (ji, job) in self.jobs.iter_mut().enumerate() {
            if job.error.is_some() {
                continue;
            }
            let mut took = false;
            let mut generating = false;
            for (bi, br) in job.branches.iter_mut().enumerate() {
                if br.done || br.fed >= br.pending.len() {
                    continue;
                }
                if budget == 0 {
                    if took {
                        served.push((ji, generating));
                    }
                    break 'jobs;
                }
                let take = (br.pending.len() - br.fed).min(budget);
                for offset in br.fed..br.fed + take {
                    let want = br.wants_logits(offset);
                    let index = self.batch.n_tokens();
                    if self
                        .batch
                        .add(br.pending[offset], br.pos, &[br.seq], want)
                        .is_err()
                    {
                        break;
                    }
                    br.pos += 1;
                    if want {
                        outputs.push((index, ji, bi, offset));
                    }
                }
                br.fed += take;
                budget -= take;
                took = true;
                generating |= br.is_generating();
            }
            if took {
                served.push((ji, generating));
            }
        }
        if self.batch.n_tokens() == 0 {
            return;
        }
        let started = Instant::now();
        let result = self.ctx.decode(&mut self.batch);
        let elapsed = ms(started);
        for &(ji, generating) in &served {
            let t = &mut self.jobs[ji].timings;
            if generating {
                t.generate += elapsed;
            } else {
                t.prefill += elapsed;
            }
        }
        if let Err(e) = result {
            for &(ji, _) in &served {
                self.jobs[ji].error = Some(EngineError::Inference(format!("llama_decode: {e}")));
            }
            return;
        }
        let events = self.read_logits(&outputs);
        for event in events {
            self.apply(event);
        }
        self.advance_stages();
    }

    fn read_logits(&self, outputs: &[(i32, usize, usize, usize)]) -> Vec<Event> {
        let sh = self.shared;
        let mut events = Vec::with_capacity(outputs.len());
        for &(index, ji, bi, offset) in outputs {
            let logits = self.ctx.get_logits_ith(index);
            let job = &self.jobs[ji];
            let event = match &job.branches[bi].kind {
                Kind::Detect => Event::Detect {
                    job: ji,
                    p_fake: yes_probability(logits, sh.yes.0 as usize, sh.no.0 as usize),
                    logits: job.tasks.keep_detection_logits.then(|| logits.to_vec()),
                },
                Kind::Classify => Event::Classify {
                    job: ji,
                    branch: bi,
                    first: std::array::from_fn(|c| {
                        log_prob(logits, sh.candidates[c][0].0 as usize)
                    }),
                },
                Kind::Candidate { tokens, .. } => Event::CandidateStep {
                    job: ji,
                    branch: bi,
                    lp: log_prob(logits, tokens[offset + 1].0 as usize),
                    last: offset + 2 == tokens.len(),
                },
                Kind::Explain { .. } | Kind::Question { .. } => Event::Token {
                    job: ji,
                    branch: bi,
                    token: LlamaToken(argmax(logits) as i32),
                },
                Kind::Prefix => continue,
            };
            events.push(event);
        }
        events
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Detect {
                job,
                p_fake,
                logits,
            } => {
                let j = &mut self.jobs[job];
                j.p_fake = Some(p_fake);
                j.detection_logits = logits;
                self.finish_branch_of_kind(job, |k| matches!(k, Kind::Detect));
                if let Explain::IfFake { threshold } = self.jobs[job].tasks.explain {
                    self.jobs[job].explain_decided = true;
                    if p_fake >= threshold {
                        let q = self.shared.prompts.artifacts.question.clone();
                        if let Err(e) = self.spawn(job, &[], &q, Kind::Explain { out: Vec::new() })
                        {
                            self.jobs[job].error = Some(e);
                        }
                    }
                }
            }
            Event::Classify { job, branch, first } => self.start_candidates(job, branch, first),
            Event::CandidateStep {
                job,
                branch,
                lp,
                last,
            } => {
                let j = &mut self.jobs[job];
                if let Kind::Candidate { index, .. } = j.branches[branch].kind {
                    j.candidate_lp[index] += lp;
                    if last {
                        j.candidates_left -= 1;
                        self.release(job, branch);
                    }
                }
            }
            Event::Token { job, branch, token } => self.on_token(job, branch, token),
        }
    }

    fn start_candidates(&mut self, ji: usize, bi: usize, first: [f64; 4]) {
        let candidates = &self.shared.candidates;
        let job = &mut self.jobs[ji];
        job.candidate_lp = first;
        let (seq, pos) = (job.branches[bi].seq, job.branches[bi].pos);
        for (c, tokens) in candidates.iter().enumerate() {
            if tokens.len() == 1 {
                job.candidates_left -= 1;
                continue;
            }
            let kind = Kind::Candidate {
                index: c,
                tokens: tokens.clone(),
            };
            let pending = tokens[..tokens.len() - 1].to_vec();
            let target = if c == 0 {
                // Candidate 0 continues on the classification sequence itself.
                let br = &mut job.branches[bi];
                br.kind = kind;
                br.pending = pending;
                br.fed = 0;
                continue;
            } else {
                match job.free_seqs.pop() {
                    Some(s) => s,
                    None => {
                        job.error = Some(EngineError::Inference("out of sequence ids".into()));
                        return;
                    }
                }
            };
            if let Err(e) = self
                .ctx
                .copy_kv_cache_seq(seq, target, None, Some(pos as u32))
            {
                job.error = Some(EngineError::Inference(e.to_string()));
                return;
            }
            job.branches.push(Branch {
                seq: target,
                pos,
                pending,
                fed: 0,
                kind,
                done: false,
            });
        }
        if candidates[0].len() == 1 {
            self.release(ji, bi);
        }
    }

    fn on_token(&mut self, ji: usize, bi: usize, token: LlamaToken) {
        let limit = match self.jobs[ji].branches[bi].kind {
            Kind::Explain { .. } => self.shared.max_explain,
            _ => self.shared.max_answer,
        };
        let eog = self.model.vocab().is_eog(token);
        let job = &mut self.jobs[ji];
        let br = &mut job.branches[bi];
        let out = match &mut br.kind {
            Kind::Explain { out } | Kind::Question { out, .. } => out,
            _ => return,
        };
        if !eog && out.len() < limit {
            out.push(token);
            job.generated_tokens += 1;
            br.pending = vec![token];
            br.fed = 0;
            return;
        }
        let text = self.detokenize(match &self.jobs[ji].branches[bi].kind {
            Kind::Explain { out } | Kind::Question { out, .. } => out,
            _ => return,
        });
        match self.jobs[ji].branches[bi].kind {
            Kind::Explain { .. } => {
                self.jobs[ji].explanation = Some(text);
                self.release(ji, bi);
            }
            Kind::Question { index, .. } => self.next_question(ji, bi, index, text),
            _ => {}
        }
    }

    /// Records an answer and asks the next question on the same sequence,
    /// after trimming it back to the shared prefix.
    fn next_question(&mut self, ji: usize, bi: usize, index: usize, answer: String) {
        let job = &mut self.jobs[ji];
        let question = job.tasks.questions[index].clone();
        job.answers.push(Answer { question, answer });
        let next = index + 1;
        if next >= job.tasks.questions.len() {
            self.release(ji, bi);
            return;
        }
        let mut history = job.tasks.history.clone();
        history.extend(job.answers.iter().map(|a| Turn {
            question: a.question.clone(),
            answer: a.answer.clone(),
        }));
        let question = job.tasks.questions[next].clone();
        let (seq, n_prefix) = (job.branches[bi].seq, job.n_prefix);
        let tokens = match self.render(&history, &question) {
            Ok((_, post)) => self.tokenize(&post, false),
            Err(e) => {
                self.jobs[ji].error = Some(e);
                return;
            }
        };
        if let Err(e) = self
            .ctx
            .clear_kv_cache_seq(Some(seq as u32), Some(n_prefix as u32), None)
        {
            self.jobs[ji].error = Some(EngineError::Inference(e.to_string()));
            return;
        }
        let br = &mut self.jobs[ji].branches[bi];
        br.kind = Kind::Question {
            index: next,
            out: Vec::new(),
        };
        br.pos = n_prefix;
        br.pending = tokens;
        br.fed = 0;
    }

    fn finish_branch_of_kind(&mut self, ji: usize, pred: impl Fn(&Kind) -> bool) {
        if let Some(bi) = self.jobs[ji]
            .branches
            .iter()
            .position(|b| !b.done && pred(&b.kind))
        {
            self.release(ji, bi);
        }
    }

    /// Ends a branch and returns its sequence (and KV cells) to the job.
    fn release(&mut self, ji: usize, bi: usize) {
        let job = &mut self.jobs[ji];
        let br = &mut job.branches[bi];
        if br.done {
            return;
        }
        br.done = true;
        if br.seq != job.root {
            let _ = self.ctx.clear_kv_cache_seq(Some(br.seq as u32), None, None);
            job.free_seqs.push(br.seq);
        }
    }

    /// Moves jobs whose prefix text is decoded on to the image stage.
    fn advance_stages(&mut self) {
        for job in &mut self.jobs {
            if matches!(job.stage, Stage::PrefixText) {
                let root = &mut job.branches[0];
                if root.fed >= root.pending.len() && !root.done {
                    root.done = true;
                    job.n_prefix = root.pos;
                    if let Some(chunks) = job.parked.take() {
                        job.stage = Stage::Image(chunks);
                    }
                }
            }
        }
    }

    /// Replies to every finished or failed job and frees its sequences.
    fn finish_jobs(&mut self) {
        let mut i = 0;
        while i < self.jobs.len() {
            if self.jobs[i].error.is_some() || self.jobs[i].is_complete() {
                let job = self.jobs.swap_remove(i);
                self.retire(job);
            } else {
                i += 1;
            }
        }
    }

    fn retire(&mut self, mut job: Job) {
        let base = job.block as u32 * SEQS_PER_REQUEST;
        for seq in base..base + SEQS_PER_REQUEST {
            let _ = self.ctx.clear_kv_cache_seq(Some(seq), None, None);
        }
        self.free_blocks.push(job.block);
        self.kv_used -= job.kv_cells;
        job.timings.total = ms(job.submitted);
        let result = match job.error.take() {
            Some(e) => Err(e),
            None => Ok(Analysis {
                p_fake: job.p_fake,
                type_scores: job
                    .tasks
                    .screen
                    .then(|| TypeScores::from_array(normalise(job.candidate_lp))),
                explanation: job.explanation.take(),
                answers: std::mem::take(&mut job.answers),
                detection_logits: job.detection_logits.take(),
                generated_tokens: job.generated_tokens,
                model: self.identity.clone(),
                timings: job.timings,
            }),
        };
        if let Some(reply) = job.reply.take() {
            // The caller may have gone away (timeout, shutdown): nothing to do.
            let _ = reply.send(result);
        }
    }
}

impl Job {
    fn is_complete(&self) -> bool {
        matches!(self.stage, Stage::Branches)
            && self.explain_decided
            && self.candidates_left == 0
            && self
                .branches
                .iter()
                .all(|b| b.done || matches!(b.kind, Kind::Prefix))
    }
}

fn first_question<'p>(tasks: &'p Tasks, prompts: &'p Prompts) -> String {
    tasks
        .questions
        .first()
        .cloned()
        .unwrap_or_else(|| prompts.detection.question.clone())
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}
