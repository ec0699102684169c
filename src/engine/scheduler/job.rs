//! The state of one request while it runs: its stage, its branches (one per
//! task, each on its own sequence), the scores gathered so far, and how it
//! turns into the caller's `Analysis` when done.

use std::time::Instant;

use llama_cpp_2::mtmd::MtmdInputChunks;
use llama_cpp_2::token::LlamaToken;

use super::seqs::{BranchSeqs, Lease};
use super::stream::AnswerStream;
use super::Reply;
use crate::domain::{Answer, ModelIdentity, TypeScores};
use crate::engine::scoring::normalise;
use crate::engine::{Analysis, EngineError, EngineTimings, Explain, Tasks};
use crate::intake::DecodedImage;

pub(super) enum Stage {
    /// The root's text prefix is queued as a branch.
    PrefixText,
    /// Prefix decoded; the image chunk waits for the vision tower.
    Image(MtmdInputChunks),
    /// Image in the KV cache; task branches run.
    Branches,
}

/// What a branch computes.
pub(super) enum Kind {
    /// The shared prefix on the root sequence (branch 0).
    Prefix,
    Detect,
    Classify,
    /// A classification answer scored token by token.
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

/// One task's sequence: the tokens it still has to decode and where.
pub(super) struct Branch {
    pub(super) seq: i32,
    pub(super) pos: i32,
    pub(super) pending: Vec<LlamaToken>,
    /// How many of `pending` are in the KV cache already.
    pub(super) fed: usize,
    pub(super) kind: Kind,
    pub(super) done: bool,
}

impl Branch {
    /// A branch that starts with `pending` at position `pos` of `seq`.
    pub fn new(seq: i32, pos: i32, pending: Vec<LlamaToken>, kind: Kind) -> Branch {
        Branch {
            seq,
            pos,
            pending,
            fed: 0,
            kind,
            done: false,
        }
    }

    /// Tokens still to decode.
    pub fn remaining(&self) -> usize {
        self.pending.len().saturating_sub(self.fed)
    }

    pub fn wants_logits(&self, offset: usize) -> bool {
        match self.kind {
            Kind::Prefix => false,
            Kind::Candidate { .. } => true,
            _ => offset + 1 == self.pending.len(),
        }
    }

    pub fn is_generating(&self) -> bool {
        matches!(
            &self.kind,
            Kind::Explain { out } | Kind::Question { out, .. } if !out.is_empty()
        )
    }
}

pub(crate) struct Job {
    pub(super) reply: Option<Reply>,
    pub(super) submitted: Instant,
    pub(super) tasks: Tasks,
    /// The sequence block and KV cells held while running; `None` until started.
    pub(super) lease: Option<Lease>,
    pub(super) seqs: BranchSeqs,
    pub(super) root: i32,
    pub(super) prefix: String,
    pub(super) n_prefix: i32,
    pub(super) stage: Stage,
    pub(super) parked: Option<MtmdInputChunks>,
    /// The image, not yet tokenized: the conversation cache will likely
    /// spare the vision tower (tokenized at start if it does not).
    pub(super) image: Option<DecodedImage>,
    /// Leading tokens of the first question's text that the root holds
    /// beyond `n_prefix`, restored from the conversation cache.
    pub(super) kept: usize,
    /// KV positions restored from the conversation cache and kept.
    pub(super) reused_tokens: usize,
    /// The text tokens after the image of the question being answered
    /// (all of them, also those restored from the cache).
    pub(super) question_tokens: Vec<LlamaToken>,
    /// The last question's branch, its sequence kept to be saved to the cache.
    pub(super) kept_branch: Option<usize>,
    /// Pieces of the last answer for the caller.
    pub(super) stream: Option<AnswerStream>,
    pub(super) branches: Vec<Branch>,
    /// Upper bound of the KV cells this job uses, reserved when it starts.
    pub(super) kv_cells: usize,
    pub(super) explain_decided: bool,
    pub(super) p_fake: Option<f32>,
    pub(super) detection_logits: Option<Vec<f32>>,
    pub(super) candidate_lp: [f64; 4],
    pub(super) candidates_left: usize,
    pub(super) explanation: Option<String>,
    pub(super) answers: Vec<Answer>,
    pub(super) timings: EngineTimings,
    /// Since when a finished job waits for its caller to take the stream.
    pub(super) draining_since: Option<Instant>,
    pub(super) generated_tokens: usize,
    pub(super) error: Option<EngineError>,
}

impl Job {
    /// A prepared job: its prefix tokens queued on the (not yet assigned)
    /// root sequence, its image parked until the prefix is decoded.
    pub(super) fn new(
        mut tasks: Tasks,
        submitted: Instant,
        prefix: String,
        prefix_tokens: Vec<LlamaToken>,
        image: Option<MtmdInputChunks>,
        kv_cells: usize,
    ) -> Job {
        // Screening decides on the explanation once p_fake is known.
        let explain_decided = !(tasks.screen && matches!(tasks.explain, Explain::IfFake { .. }));
        Job {
            reply: None,
            submitted,
            lease: None,
            seqs: BranchSeqs::default(),
            root: -1,
            n_prefix: 0,
            stage: Stage::PrefixText,
            parked: image,
            image: None,
            kept: 0,
            reused_tokens: 0,
            question_tokens: Vec::new(),
            kept_branch: None,
            stream: tasks.stream.take().map(AnswerStream::new),
            branches: vec![Branch::new(-1, 0, prefix_tokens, Kind::Prefix)],
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
            draining_since: None,
            generated_tokens: 0,
            error: None,
            tasks,
        }
    }

    /// Takes up a lease: the prefix goes on the block's root sequence.
    pub(super) fn begin(&mut self, lease: Lease) {
        self.seqs = lease.branch_seqs();
        self.root = lease.root();
        self.branches[0].seq = self.root;
        self.lease = Some(lease);
    }

    /// Whether nobody waits for the outcome any more: the stream receiver
    /// was dropped (the client went away), or the reply's receiver was
    /// (the caller stopped awaiting, e.g. a timeout).
    pub(super) fn is_abandoned(&self) -> bool {
        self.stream.as_ref().is_some_and(|s| s.is_closed())
            || self.reply.as_ref().is_some_and(|r| r.is_closed())
    }

    pub(super) fn is_complete(&self) -> bool {
        matches!(self.stage, Stage::Branches)
            && self.explain_decided
            && self.candidates_left == 0
            && self
                .branches
                .iter()
                .all(|b| b.done || matches!(b.kind, Kind::Prefix))
    }

    /// The caller's answer: the error, or what the branches gathered.
    pub(super) fn result(&mut self, model: &ModelIdentity) -> Result<Analysis, EngineError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        Ok(Analysis {
            p_fake: self.p_fake,
            type_scores: self
                .tasks
                .screen
                .then(|| TypeScores::from_array(normalise(self.candidate_lp))),
            explanation: self.explanation.take(),
            answers: std::mem::take(&mut self.answers),
            detection_logits: self.detection_logits.take(),
            generated_tokens: self.generated_tokens,
            reused_tokens: self.reused_tokens,
            model: model.clone(),
            timings: self.timings,
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::engine::scheduler::seqs::Admission;
    use crate::engine::SEQS_PER_REQUEST;

    pub fn job(tasks: Tasks, prefix_tokens: usize, kv_cells: usize) -> Job {
        let tokens = (0..prefix_tokens as i32).map(LlamaToken).collect();
        Job::new(
            tasks,
            Instant::now(),
            "prefix".into(),
            tokens,
            None,
            kv_cells,
        )
    }

    fn plain_tasks() -> Tasks {
        Tasks {
            screen: false,
            explain: Explain::Never,
            history: Vec::new(),
            questions: vec!["why?".into()],
            keep_detection_logits: false,
            image_key: None,
            stream: None,
        }
    }

    #[test]
    fn begin_puts_the_prefix_on_the_root_and_frees_the_branches() {
        let mut admission = Admission::new(3, 100);
        let _other = admission.start(1).unwrap();
        let mut job = job(Tasks::screening(0.5), 5, 10);
        let lease = admission.start(job.kv_cells).unwrap();
        let root = lease.root();
        job.begin(lease);
        assert_eq!(job.root, root);
        assert_eq!(job.branches[0].seq, root);
        assert_eq!(job.seqs.free(), SEQS_PER_REQUEST as usize - 1);
        let first = job.seqs.take().unwrap();
        assert!(first > root && first < root + SEQS_PER_REQUEST as i32);
    }

    #[test]
    fn screening_waits_for_p_fake_before_deciding_on_the_explanation() {
        assert!(!job(Tasks::screening(0.5), 1, 1).explain_decided);
        assert!(job(Tasks::requested(true, 0.5, Vec::new()), 1, 1).explain_decided);
        assert!(job(plain_tasks(), 1, 1).explain_decided);
        assert_eq!(job(Tasks::screening(0.5), 1, 1).candidates_left, 4);
        assert_eq!(job(plain_tasks(), 1, 1).candidates_left, 0);
    }

    #[test]
    fn a_job_is_complete_only_when_every_branch_is_done() {
        let mut job = job(plain_tasks(), 3, 10);
        assert!(!job.is_complete(), "still in the prefix stage");
        job.stage = Stage::Branches;
        assert!(
            job.is_complete(),
            "the prefix branch alone does not hold it"
        );
        job.branches.push(Branch::new(
            1,
            3,
            Vec::new(),
            Kind::Question {
                index: 0,
                out: Vec::new(),
            },
        ));
        assert!(!job.is_complete(), "a question is open");
        job.branches[1].done = true;
        assert!(job.is_complete());
        job.candidates_left = 1;
        assert!(!job.is_complete(), "a candidate is still scored");
        job.candidates_left = 0;
        job.explain_decided = false;
        assert!(!job.is_complete(), "the explanation is undecided");
    }

    #[test]
    fn branch_counts_what_is_left_to_decode() {
        let mut b = Branch::new(0, 0, vec![LlamaToken(1), LlamaToken(2)], Kind::Detect);
        assert_eq!(b.remaining(), 2);
        assert!(!b.wants_logits(0));
        assert!(b.wants_logits(1), "logits after the last pending token");
        b.fed = 2;
        assert_eq!(b.remaining(), 0);
        let prefix = Branch::new(0, 0, vec![LlamaToken(1)], Kind::Prefix);
        assert!(!prefix.wants_logits(0));
    }

    #[test]
    fn result_reports_the_error_or_the_scores() {
        let model = ModelIdentity {
            base_sha256: "b".into(),
            mmproj_sha256: "m".into(),
            adapter: None,
        };
        let mut failed = job(Tasks::screening(0.5), 1, 1);
        failed.error = Some(EngineError::Inference("boom".into()));
        assert!(matches!(
            failed.result(&model),
            Err(EngineError::Inference(_))
        ));

        let mut screened = job(Tasks::screening(0.5), 1, 1);
        screened.p_fake = Some(0.75);
        screened.candidate_lp = [0.0, -1.0, -2.0, -3.0];
        let analysis = screened.result(&model).unwrap();
        assert_eq!(analysis.p_fake, Some(0.75));
        let scores = analysis.type_scores.expect("screening scores the types");
        let expected = TypeScores::from_array(normalise([0.0, -1.0, -2.0, -3.0]));
        assert_eq!(scores, expected);
        assert_eq!(analysis.model, model);

        let analysis = job(plain_tasks(), 1, 1).result(&model).unwrap();
        assert!(analysis.type_scores.is_none());
    }
}
