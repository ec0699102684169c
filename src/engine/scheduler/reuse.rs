//! The conversation cache on llama.cpp: a starting job with an image key
//! restores the best saved state into its root sequence (system prefix,
//! image, and the leading text tokens it shares with the new question),
//! trims the rest, and decodes only what is new; a finished job saves its
//! longest state (the last question's sequence, or prefix and image) to host
//! memory. A restore that fails falls back to the cold path: same answer,
//! only slower.

use std::time::Instant;

use llama_cpp_2::context::session::{LlamaStateSeqFlags, SeqState};
use llama_cpp_2::token::LlamaToken;

use super::cache::{Hit, Saved};
use super::job::{Job, Kind, Stage};
use super::{ms, Scheduler};

impl Scheduler<'_, '_> {
    /// For a job just started: restore it from the cache and start its
    /// branches, or else make sure its image is tokenized for the cold path.
    pub(super) fn restore_or_tokenize(&mut self, ji: usize) {
        if self.restore(ji) {
            return;
        }
        let job = &mut self.jobs[ji];
        if let Some(image) = job.image.take() {
            match self.tokenize_image(&image) {
                Ok(chunks) => self.jobs[ji].parked = Some(chunks),
                Err(e) => self.jobs[ji].error = Some(e),
            }
        }
    }

    /// Restores the best cached state into the job's root; false when
    /// there is none or it cannot be restored (nothing is left on the root).
    fn restore(&mut self, ji: usize) -> bool {
        let job = &self.jobs[ji];
        let Some(key) = job.tasks.image_key.as_deref() else {
            return false;
        };
        if !self.cache.enabled() {
            return false;
        }
        let post = match job.tasks.questions.first() {
            Some(q) => match self.post_tokens(&job.tasks.history, q) {
                Ok(tokens) => tokens,
                // The cold path reports the error.
                Err(_) => return false,
            },
            None => Vec::new(),
        };
        let (root, max_positions) = (job.root, job.kv_cells);
        let prefix = job.branches[0].pending.clone();
        let Some(hit) = self.cache.best(key, &prefix, &post, max_positions) else {
            return false;
        };
        let started = Instant::now();
        if let Err(e) = self.load_state(&hit, root) {
            tracing::warn!(error = %e, "conversation cache restore failed; decoding from scratch");
            let _ = self.ctx.clear_kv_cache_seq(Some(root as u32), None, None);
            return false;
        }
        let job = &mut self.jobs[ji];
        job.timings.prefill += ms(started);
        job.n_prefix = hit.n_prefix as i32;
        job.kept = hit.common;
        job.reused_tokens = hit.n_prefix + hit.common;
        let prefix_branch = &mut job.branches[0];
        prefix_branch.fed = prefix_branch.pending.len();
        prefix_branch.pos = hit.n_prefix as i32;
        prefix_branch.done = true;
        job.parked = None;
        job.image = None;
        job.stage = Stage::Branches;
        self.start_branches(ji);
        true
    }

    /// The state into `seq`, trimmed to prefix, image and the common tokens.
    fn load_state(&mut self, hit: &Hit<SeqState>, seq: i32) -> Result<(), String> {
        self.ctx
            .state_seq_set(&hit.state, seq)
            .map_err(|e| e.to_string())?;
        if hit.common < hit.cached_post {
            let keep = (hit.n_prefix + hit.common) as u32;
            self.ctx
                .clear_kv_cache_seq(Some(seq as u32), Some(keep), None)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Whether the job's last question should keep its sequence for saving.
    pub(super) fn saves_conversation(&self, ji: usize) -> bool {
        self.cache.enabled() && self.jobs[ji].tasks.image_key.is_some()
    }

    /// Saves a successful job's longest state: the last question's sequence
    /// (its text and answer after the image), or, for a job that decoded the
    /// image itself and asked nothing, prefix and image alone.
    pub(super) fn save_conversation(&mut self, job: &Job) {
        let Some(key) = &job.tasks.image_key else {
            return;
        };
        if !self.cache.enabled() || !matches!(job.stage, Stage::Branches) {
            return;
        }
        let (seq, post) = match job.kept_branch {
            Some(bi) => match answered_tokens(job, bi) {
                Some(found) => found,
                None => return,
            },
            None if job.reused_tokens == 0 => (job.root, Vec::new()),
            // Restored and asked nothing: the cache holds it already.
            None => return,
        };
        let prefix = &job.branches[0].pending;
        if self.cache.covers(key, prefix, &post) {
            // The same conversation again: nothing new to copy.
            return;
        }
        let started = Instant::now();
        let state = match self.ctx.state_seq_get(seq, LlamaStateSeqFlags::empty()) {
            Ok(state) => state,
            Err(e) => {
                tracing::warn!(error = %e, "cannot save a conversation state");
                return;
            }
        };
        let bytes = state.byte_len();
        tracing::debug!(
            bytes,
            positions = job.n_prefix as usize + post.len(),
            ms = ms(started),
            "conversation state saved"
        );
        self.cache.insert(Saved {
            key: key.clone(),
            prefix: prefix.clone(),
            n_prefix: job.n_prefix as usize,
            post,
            state,
            bytes,
        });
    }
}

/// The tokens after the image that the last question's sequence holds: its
/// text and its answer, with the sequence. `None` if they do not account for
/// every position.
fn answered_tokens(job: &Job, bi: usize) -> Option<(i32, Vec<LlamaToken>)> {
    let br = job.branches.get(bi)?;
    let Kind::Question { out, .. } = &br.kind else {
        return None;
    };
    let mut post = job.question_tokens.clone();
    post.extend_from_slice(out);
    (job.n_prefix as usize + post.len() == br.pos as usize).then_some((br.seq, post))
}
