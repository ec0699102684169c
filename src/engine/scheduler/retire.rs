//! The end of a job: its conversation saved to the cache, its sequences and
//! KV cells given back, and its reply sent — at once, or once the caller has
//! taken the whole streamed answer (a full channel never blocks the engine
//! thread; the job waits in `draining`, holding no sequences). A caller that
//! stops listening cancels its job.

use std::time::{Duration, Instant};

/// How long a finished job waits for its caller to take the streamed rest.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

use super::job::Job;
use super::stream::Gone;
use super::{ms, Scheduler};
use crate::domain::ModelIdentity;
use crate::engine::EngineError;

impl Scheduler<'_, '_> {
    /// Fails every job whose caller went away; the next `finish_jobs` frees
    /// its sequences and answers `Cancelled`.
    pub(super) fn cancel_abandoned(&mut self) {
        for job in &mut self.jobs {
            if job.error.is_none() && job.is_abandoned() {
                job.error = Some(EngineError::Cancelled);
            }
        }
    }

    /// Replies to every finished or failed job and frees its sequences.
    pub(super) fn finish_jobs(&mut self) {
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
        if job.error.is_none() {
            if let Some(stream) = &mut job.stream {
                let tail = stream.pieces.finish();
                if stream.offer(tail) == Err(Gone) {
                    job.error = Some(EngineError::Cancelled);
                }
            }
        }
        let ok = job.error.is_none();
        let waits = ok && job.stream.as_ref().is_some_and(|s| !s.is_flushed());
        if !waits {
            reply(&mut job, &self.identity);
        }
        if ok {
            // After the reply: the caller does not wait for the copy.
            self.save_conversation(&job);
        }
        if let Some(lease) = job.lease.take() {
            for seq in lease.all_seqs() {
                let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
            }
            self.admission.finish(lease);
        }
        if waits {
            job.draining_since = Some(Instant::now());
            self.draining.push(job);
        }
    }

    /// Offers the pending pieces of drained jobs again; replies to those
    /// done. With nothing else to do, waits a moment rather than spin.
    pub(super) fn drain(&mut self, decoded: bool) {
        if self.draining.is_empty() {
            return;
        }
        let mut i = 0;
        while i < self.draining.len() {
            let job = &mut self.draining[i];
            let flushed = match job
                .stream
                .as_mut()
                .map(|s| s.flush().map(|()| s.is_flushed()))
            {
                Some(Ok(false)) => false,
                Some(Err(Gone)) => {
                    job.error = Some(EngineError::Cancelled);
                    true
                }
                Some(Ok(true)) | None => true,
            };
            // A caller that stops reading gets its reply (the whole answer)
            // after DRAIN_LIMIT without the rest of the stream: a draining
            // job holds back adapter swaps, so it must not wait forever.
            let stale = job
                .draining_since
                .is_some_and(|t| t.elapsed() > DRAIN_LIMIT);
            if flushed || stale || job.is_abandoned() {
                let mut job = self.draining.swap_remove(i);
                reply(&mut job, &self.identity);
            } else {
                i += 1;
            }
        }
        if !decoded && !self.draining.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Sends a job's outcome (the caller may have gone: nothing to do then) and
/// ends its stream.
fn reply(job: &mut Job, model: &ModelIdentity) {
    job.timings.total = ms(job.submitted);
    let result = job.result(model);
    if let Some(reply) = job.reply.take() {
        let _ = reply.send(result);
    }
    job.stream = None;
}
