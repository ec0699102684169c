//! The tasks of a running job as branches: starting them on copies of the
//! job's prefix, turning each decode's logits into events (a detection score,
//! a candidate's log-probability, a generated token), and applying those
//! events, which may start, continue or end branches.

use llama_cpp_2::token::LlamaToken;

use super::batch::Output;
use super::job::{Branch, Kind};
use super::Scheduler;
use crate::domain::prompts::Turn;
use crate::domain::Answer;
use crate::engine::scoring::{argmax, log_prob, yes_probability};
use crate::engine::{EngineError, Explain};

/// A decode's outcome for one branch, computed while the logits are borrowed
/// and applied afterwards (applying needs the context mutably).
pub(super) enum Event {
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

impl Scheduler<'_, '_> {
    /// Starts the task branches of a job whose image is in the KV cache.
    pub(super) fn start_branches(&mut self, ji: usize) {
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
            .seqs
            .take()
            .ok_or_else(|| EngineError::Inference("out of sequence ids".into()))?;
        // The first question continues the text the cache restored on the root.
        let kept = match kind {
            Kind::Question { index: 0, .. } if job.kept < tokens.len() => job.kept,
            _ => 0,
        };
        if let Kind::Question { .. } = kind {
            job.question_tokens = tokens.clone();
        }
        let start = job.n_prefix + kept as i32;
        self.ctx
            .copy_kv_cache_seq(job.root, seq, None, Some(start as u32))
            .map_err(|e| EngineError::Inference(e.to_string()))?;
        job.branches
            .push(Branch::new(seq, start, tokens[kept..].to_vec(), kind));
        Ok(())
    }

    /// Reads the logits of every output position into events; applying
    /// them needs the context mutably, so they are applied afterwards.
    pub(super) fn read_logits(&self, outputs: &[Output]) -> Vec<Event> {
        let sh = self.shared;
        let mut events = Vec::with_capacity(outputs.len());
        for &Output {
            index,
            job: ji,
            branch: bi,
            offset,
        } in outputs
        {
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

    pub(super) fn apply(&mut self, event: Event) {
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
                match job.seqs.take() {
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
            job.branches.push(Branch::new(target, pos, pending, kind));
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
        let vocab = self.model.vocab();
        let eog = vocab.is_eog(token);
        let job = &mut self.jobs[ji];
        let last = job.tasks.questions.len();
        let br = &mut job.branches[bi];
        let streamed = matches!(br.kind, Kind::Question { index, .. } if index + 1 == last);
        let out = match &mut br.kind {
            Kind::Explain { out } | Kind::Question { out, .. } => out,
            _ => return,
        };
        if !eog && out.len() < limit {
            out.push(token);
            job.generated_tokens += 1;
            br.pending = vec![token];
            br.fed = 0;
            if let Some(stream) = job.stream.as_mut().filter(|_| streamed) {
                let mut bytes = Vec::new();
                // As `detokenize` renders it, so that the pieces add up.
                vocab.token_to_piece_into(token, &mut bytes, false, None);
                let text = stream.pieces.push(&bytes);
                if stream.offer(text).is_err() {
                    job.error = Some(EngineError::Cancelled);
                }
            }
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
            if self.saves_conversation(ji) {
                // Its sequence goes to the cache when the job retires.
                let job = &mut self.jobs[ji];
                job.branches[bi].done = true;
                job.kept_branch = Some(bi);
            } else {
                self.release(ji, bi);
            }
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
        let job = &mut self.jobs[ji];
        job.question_tokens = tokens.clone();
        let br = &mut job.branches[bi];
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
            job.seqs.give_back(br.seq);
        }
    }
}
