//! Batch assembly: which pending tokens of which branches go into the next
//! `llama_decode`, within `n_batch` tokens. Jobs are served in order, so the
//! oldest job's branches always get their tokens in first.

use std::time::Instant;

use super::job::Job;
use super::{ms, Scheduler};
use crate::engine::EngineError;

/// Part of one branch's pending tokens, from `fed` on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Slice {
    pub job: usize,
    pub branch: usize,
    pub take: usize,
}

/// A job that has tokens in the batch, for timing attribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Served {
    pub job: usize,
    /// Whether any of its tokens was generated text (else it is prefill).
    pub generating: bool,
}

#[derive(Debug, Default, PartialEq)]
pub(super) struct Plan {
    pub slices: Vec<Slice>,
    pub served: Vec<Served>,
}

/// A batch position whose logits are read after the decode.
#[derive(Debug, Clone, Copy)]
pub(super) struct Output {
    pub index: i32,
    pub job: usize,
    pub branch: usize,
    /// Offset of the token in the branch's `pending`.
    pub offset: usize,
}

/// Plans one batch of at most `n_batch` tokens over the jobs without errors.
pub(super) fn plan(jobs: &[Job], n_batch: usize) -> Plan {
    let mut plan = Plan::default();
    let mut budget = n_batch;
    'jobs: for (ji, job) in jobs.iter().enumerate() {
        if job.error.is_some() {
            continue;
        }
        let mut took = false;
        let mut generating = false;
        for (bi, br) in job.branches.iter().enumerate() {
            if br.done || br.remaining() == 0 {
                continue;
            }
            if budget == 0 {
                if took {
                    plan.served.push(Served {
                        job: ji,
                        generating,
                    });
                }
                break 'jobs;
            }
            let take = br.remaining().min(budget);
            plan.slices.push(Slice {
                job: ji,
                branch: bi,
                take,
            });
            budget -= take;
            took = true;
            generating |= br.is_generating();
        }
        if took {
            plan.served.push(Served {
                job: ji,
                generating,
            });
        }
    }
    plan
}

impl Scheduler<'_, '_> {
    /// One batched decode of every branch's pending tokens (within n_batch),
    /// then the logits are turned into events and applied.
    /// Returns whether anything was decoded.
    pub(super) fn decode_step(&mut self) -> bool {
        let plan = plan(&self.jobs, self.shared.n_batch);
        let outputs = self.fill_batch(&plan);
        if self.batch.n_tokens() == 0 {
            return false;
        }
        let started = Instant::now();
        let result = self.ctx.decode(&mut self.batch);
        let elapsed = ms(started);
        for served in &plan.served {
            let t = &mut self.jobs[served.job].timings;
            if served.generating {
                t.generate += elapsed;
            } else {
                t.prefill += elapsed;
            }
        }
        if let Err(e) = result {
            for served in &plan.served {
                self.jobs[served.job].error =
                    Some(EngineError::Inference(format!("llama_decode: {e}")));
            }
            return true;
        }
        let events = self.read_logits(&outputs);
        for event in events {
            self.apply(event);
        }
        self.advance_stages();
        true
    }

    /// Puts the planned tokens into the llama batch and marks them fed.
    fn fill_batch(&mut self, plan: &Plan) -> Vec<Output> {
        self.batch.clear();
        let mut outputs = Vec::new();
        for slice in &plan.slices {
            let br = &mut self.jobs[slice.job].branches[slice.branch];
            for offset in br.fed..br.fed + slice.take {
                let want = br.wants_logits(offset);
                let index = self.batch.n_tokens();
                // Cannot fail: the plan stays within n_batch, the batch's size.
                if self
                    .batch
                    .add(br.pending[offset], br.pos, &[br.seq], want)
                    .is_err()
                {
                    break;
                }
                br.pos += 1;
                if want {
                    outputs.push(Output {
                        index,
                        job: slice.job,
                        branch: slice.branch,
                        offset,
                    });
                }
            }
            br.fed += slice.take;
        }
        outputs
    }
}

#[cfg(test)]
mod tests {
    use llama_cpp_2::token::LlamaToken;

    use super::*;
    use crate::engine::scheduler::job::tests::job;
    use crate::engine::scheduler::job::{Branch, Kind};
    use crate::engine::Tasks;

    fn tokens(n: usize) -> Vec<LlamaToken> {
        (0..n as i32).map(LlamaToken).collect()
    }

    fn slice(job: usize, branch: usize, take: usize) -> Slice {
        Slice { job, branch, take }
    }

    fn served(job: usize, generating: bool) -> Served {
        Served { job, generating }
    }

    #[test]
    fn all_pending_tokens_fit_in_one_batch() {
        let jobs = vec![
            job(Tasks::screening(0.5), 5, 10),
            job(Tasks::screening(0.5), 3, 10),
        ];
        let plan = plan(&jobs, 64);
        assert_eq!(plan.slices, vec![slice(0, 0, 5), slice(1, 0, 3)]);
        assert_eq!(plan.served, vec![served(0, false), served(1, false)]);
    }

    #[test]
    fn the_budget_cuts_the_batch_in_job_order() {
        let jobs = vec![
            job(Tasks::screening(0.5), 5, 10),
            job(Tasks::screening(0.5), 3, 10),
        ];
        let plan = plan(&jobs, 6);
        assert_eq!(plan.slices, vec![slice(0, 0, 5), slice(1, 0, 1)]);
        let total: usize = plan.slices.iter().map(|s| s.take).sum();
        assert_eq!(total, 6);

        let plan = super::plan(&jobs, 5);
        assert_eq!(plan.slices, vec![slice(0, 0, 5)]);
        assert_eq!(plan.served, vec![served(0, false)], "job 1 got nothing");

        let plan = super::plan(&jobs, 3);
        assert_eq!(plan.slices, vec![slice(0, 0, 3)]);
        assert_eq!(plan.served, vec![served(0, false)]);
    }

    #[test]
    fn failed_jobs_and_finished_branches_are_skipped() {
        let mut jobs = vec![
            job(Tasks::screening(0.5), 4, 10),
            job(Tasks::screening(0.5), 4, 10),
            job(Tasks::screening(0.5), 4, 10),
        ];
        jobs[0].error = Some(EngineError::Inference("x".into()));
        jobs[1].branches[0].fed = 4;
        jobs[1]
            .branches
            .push(Branch::new(9, 4, tokens(2), Kind::Detect));
        jobs[1]
            .branches
            .push(Branch::new(10, 4, tokens(2), Kind::Classify));
        jobs[1].branches[2].done = true;
        jobs[2].branches[0].fed = 1;
        let plan = plan(&jobs, 64);
        assert_eq!(plan.slices, vec![slice(1, 1, 2), slice(2, 0, 3)]);
        assert_eq!(plan.served, vec![served(1, false), served(2, false)]);
    }

    #[test]
    fn generated_tokens_count_as_generation() {
        let mut jobs = vec![job(Tasks::screening(0.5), 2, 10)];
        jobs[0].branches[0].fed = 2;
        jobs[0].branches.push(Branch::new(
            1,
            9,
            tokens(1),
            Kind::Explain {
                out: vec![LlamaToken(7)],
            },
        ));
        let plan = plan(&jobs, 8);
        assert_eq!(plan.slices, vec![slice(0, 1, 1)]);
        assert_eq!(plan.served, vec![served(0, true)]);
    }

    #[test]
    fn nothing_pending_plans_an_empty_batch() {
        let mut jobs = vec![job(Tasks::screening(0.5), 2, 10)];
        jobs[0].branches[0].fed = 2;
        assert_eq!(plan(&jobs, 8), Plan::default());
        assert_eq!(plan(&[], 8), Plan::default());
    }
}
