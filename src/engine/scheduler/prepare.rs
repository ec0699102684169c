//! Turning a request into a prepared job: the chat prefix tokenized, the
//! image preprocessed, and the KV cells the job may need counted up front so
//! that admission can reserve them.

use std::time::Instant;

use llama_cpp_2::mtmd::{MtmdBitmap, MtmdInputChunks, MtmdInputText};
use llama_cpp_2::token::LlamaToken;

use super::job::Job;
use super::{Reply, Scheduler};
use crate::domain::prompts::{Prompts, Turn};
use crate::engine::{AnalysisRequest, EngineError, Explain, Tasks};
use crate::intake::DecodedImage;

/// The fixed token counts that bound a job's cells besides its prompts.
#[derive(Debug, Clone, Copy)]
pub(super) struct TaskLimits {
    /// All classification candidates' tokens together.
    pub candidate_tokens: usize,
    pub max_explain: usize,
    pub max_answer: usize,
}

/// Upper bound on the KV cells a job's tasks use beyond the shared prefix.
/// `post_len` counts the tokens of a task's text after the image.
pub(super) fn task_cells(
    tasks: &Tasks,
    prompts: &Prompts,
    limits: TaskLimits,
    mut post_len: impl FnMut(&[Turn], &str) -> Result<usize, EngineError>,
) -> Result<usize, EngineError> {
    let mut cells = 0;
    if tasks.screen {
        cells += post_len(&[], &prompts.detection.question)?;
        cells += post_len(&[], &prompts.classification.question)?;
        cells += limits.candidate_tokens;
    }
    if tasks.screen && tasks.explain != Explain::Never || tasks.explain == Explain::Always {
        cells += post_len(&[], &prompts.artifacts.question)? + limits.max_explain;
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
        cells += post_len(&history, last)? + tasks.questions.len() * limits.max_answer;
    }
    Ok(cells)
}

impl Scheduler<'_, '_> {
    /// Tokenizes a request and preprocesses its image; it holds no sequence
    /// or KV cells until `start`.
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

        // A conversation cache entry for this image spares the vision tower:
        // the image is tokenized only if the entry is gone when the job starts.
        let cached =
            (tasks.image_key.as_deref()).and_then(|key| self.cache.n_prefix(key, &prefix_tokens));
        let (chunks, image, image_positions) = match cached {
            // Room for the cold path too, should the entry be gone by then.
            Some(n_prefix) => (
                None,
                Some(request.image),
                (n_prefix.saturating_sub(prefix_tokens.len())).max(sh.image_tokens),
            ),
            None => {
                let chunks = self.tokenize_image(&request.image)?;
                let positions = chunks.total_positions() as usize;
                (Some(chunks), None, positions)
            }
        };

        let limits = TaskLimits {
            candidate_tokens: sh.candidates.iter().map(Vec::len).sum(),
            max_explain: sh.max_explain,
            max_answer: sh.max_answer,
        };
        let task_cells = task_cells(&tasks, &sh.prompts, limits, |history, question| {
            Ok(self.post_tokens(history, question)?.len())
        })?;
        let kv_cells = prefix_tokens.len() + image_positions + task_cells;
        if kv_cells > sh.n_ctx {
            return Err(EngineError::TooLong {
                needed: kv_cells,
                available: sh.n_ctx,
            });
        }
        let mut job = Job::new(tasks, submitted, prefix, prefix_tokens, chunks, kv_cells);
        job.image = image;
        Ok(job)
    }

    /// The image through mtmd's preprocessing, as chunks for the vision tower.
    pub(super) fn tokenize_image(
        &self,
        img: &DecodedImage,
    ) -> Result<MtmdInputChunks, EngineError> {
        let bitmap = MtmdBitmap::from_image_data(img.width(), img.height(), img.rgb())
            .map_err(|e| EngineError::Image(e.to_string()))?;
        self.mtmd
            .tokenize(
                MtmdInputText {
                    text: self.shared.marker.clone(),
                    add_special: false,
                    parse_special: true,
                },
                &[&bitmap],
            )
            .map_err(|e| EngineError::Image(e.to_string()))
    }

    pub(super) fn render(
        &self,
        history: &[Turn],
        question: &str,
    ) -> Result<(String, String), EngineError> {
        let sh = self.shared;
        sh.format.render(
            self.model,
            &sh.prompts.chat.system,
            &sh.marker,
            history,
            question,
        )
    }

    pub(super) fn post_tokens(
        &self,
        history: &[Turn],
        question: &str,
    ) -> Result<Vec<LlamaToken>, EngineError> {
        let (_, post) = self.render(history, question)?;
        Ok(self.tokenize(&post, false))
    }

    pub(super) fn tokenize(&self, text: &str, add_bos: bool) -> Vec<LlamaToken> {
        self.model.vocab().tokenize(text.as_bytes(), add_bos, true)
    }

    pub(super) fn detokenize(&self, tokens: &[LlamaToken]) -> String {
        let vocab = self.model.vocab();
        let mut bytes = Vec::new();
        for &t in tokens {
            vocab.token_to_piece_into(t, &mut bytes, false, None);
        }
        String::from_utf8_lossy(&bytes).trim().to_string()
    }
}

/// The question the shared prefix is rendered with (the prefix must not
/// depend on it; `spawn` checks that).
fn first_question(tasks: &Tasks, prompts: &Prompts) -> String {
    tasks
        .questions
        .first()
        .cloned()
        .unwrap_or_else(|| prompts.detection.question.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: TaskLimits = TaskLimits {
        candidate_tokens: 7,
        max_explain: 100,
        max_answer: 20,
    };

    /// A stand-in tokenizer: one token per byte of the question, plus 1000
    /// per turn of history, so the test sees which history was counted.
    fn fake_len(history: &[Turn], question: &str) -> Result<usize, EngineError> {
        Ok(question.len() + 1000 * history.len())
    }

    fn cells(tasks: &Tasks) -> usize {
        task_cells(tasks, &Prompts::embedded(), LIMITS, fake_len).unwrap()
    }

    fn questions(q: &[&str]) -> Vec<String> {
        q.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn screening_counts_both_questions_the_candidates_and_the_explanation() {
        let p = Prompts::embedded();
        let scoring = p.detection.question.len() + p.classification.question.len() + 7;
        let explain = p.artifacts.question.len() + 100;
        // The explanation may be generated, so its cells are reserved.
        assert_eq!(cells(&Tasks::screening(0.5)), scoring + explain);
        let never = Tasks {
            explain: Explain::Never,
            ..Tasks::screening(0.5)
        };
        assert_eq!(cells(&never), scoring);
    }

    #[test]
    fn questions_count_the_last_one_after_the_others_and_every_answer() {
        let tasks = Tasks::follow_up(Vec::new(), "abc".into());
        assert_eq!(cells(&tasks), 3 + 20);
        let tasks = Tasks {
            questions: questions(&["a", "bb", "cccc"]),
            ..Tasks::follow_up(
                vec![Turn {
                    question: "old".into(),
                    answer: "x".into(),
                }],
                String::new(),
            )
        };
        // History: 1 earlier turn + 2 earlier questions = 3 turns.
        assert_eq!(cells(&tasks), 3000 + 4 + 3 * 20);
    }

    #[test]
    fn an_explanation_without_screening_is_counted_only_when_always() {
        let p = Prompts::embedded();
        let always = Tasks {
            screen: false,
            explain: Explain::Always,
            ..Tasks::follow_up(Vec::new(), "q".into())
        };
        assert_eq!(cells(&always), p.artifacts.question.len() + 100 + 1 + 20);
        let if_fake = Tasks {
            explain: Explain::IfFake { threshold: 0.5 },
            ..always.clone()
        };
        assert_eq!(cells(&if_fake), 1 + 20);
    }

    #[test]
    fn a_tokenizer_error_is_passed_on() {
        let err = task_cells(
            &Tasks::screening(0.5),
            &Prompts::embedded(),
            LIMITS,
            |_, _| Err(EngineError::Prompt("bad".into())),
        )
        .unwrap_err();
        assert!(matches!(err, EngineError::Prompt(_)));
    }

    #[test]
    fn the_prefix_is_rendered_with_the_first_question_or_the_detection_one() {
        let p = Prompts::embedded();
        let tasks = Tasks::requested(false, 0.5, questions(&["first", "second"]));
        assert_eq!(first_question(&tasks, &p), "first");
        assert_eq!(
            first_question(&Tasks::screening(0.5), &p),
            p.detection.question
        );
    }
}
