//! Prompt templates are data (`config/prompts.toml`); this module loads them
//! and renders conversations in the Vicuna v1 format LLaVA-1.5 was trained with.

use std::path::Path;

use serde::Deserialize;

use super::recognise::same_text;

/// The prompts compiled into the binary.
pub const DEFAULT_PROMPTS: &str = include_str!("../../config/prompts.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prompts {
    pub chat: VicunaFormat,
    pub detection: DetectionPrompt,
    pub classification: ClassificationPrompt,
    pub artifacts: ArtifactsPrompt,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VicunaFormat {
    pub system: String,
    pub system_suffix: String,
    pub user_prefix: String,
    pub user_suffix: String,
    pub assistant_prefix: String,
    pub assistant_suffix: String,
}

/// A task's question in every phrasing of its template library
/// (DFA-Instruct builds its data from several per task). `question` is the
/// one serving asks (the first); training samples among `phrasings`; a
/// dataset turn in any of them is recognised as the task.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhrasingsWire {
    question: Option<String>,
    questions: Option<Vec<String>>,
}

impl PhrasingsWire {
    /// The phrasings, checked: one of the two fields, at least one phrasing,
    /// none empty, none listed twice (compared as recognition compares them,
    /// so two that only differ in case or final punctuation are one).
    fn into_list(self, task: &str) -> Result<Vec<String>, String> {
        let (field, list) = match (self.question, self.questions) {
            (Some(_), Some(_)) => {
                return Err(format!("{task}: give `question` or `questions`, not both"))
            }
            (None, None) => return Err(format!("{task}.questions is missing")),
            (Some(q), None) => ("question", vec![q]),
            (None, Some(list)) => ("questions", list),
        };
        if list.is_empty() {
            return Err(format!("{task}.{field}: give at least one phrasing"));
        }
        for (i, q) in list.iter().enumerate() {
            if q.trim().is_empty() {
                return Err(format!("{task}.{field}: phrasing {} is empty", i + 1));
            }
            if list[..i].iter().any(|p| same_text(p, q)) {
                return Err(format!("{task}.{field}: `{q}` is listed twice"));
            }
        }
        Ok(list)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "DetectionWire")]
pub struct DetectionPrompt {
    /// The serving phrasing: `phrasings[0]`.
    pub question: String,
    pub phrasings: Vec<String>,
    pub yes: String,
    pub no: String,
}

#[derive(Deserialize)]
struct DetectionWire {
    #[serde(flatten)]
    phrasings: PhrasingsWire,
    yes: String,
    no: String,
}

impl TryFrom<DetectionWire> for DetectionPrompt {
    type Error = String;

    fn try_from(w: DetectionWire) -> Result<Self, String> {
        let phrasings = w.phrasings.into_list("detection")?;
        Ok(DetectionPrompt {
            question: phrasings[0].clone(),
            phrasings,
            yes: w.yes,
            no: w.no,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "ClassificationWire")]
pub struct ClassificationPrompt {
    /// The serving phrasing: `phrasings[0]`.
    pub question: String,
    pub phrasings: Vec<String>,
    pub answers: ClassAnswers,
}

#[derive(Deserialize)]
struct ClassificationWire {
    #[serde(flatten)]
    phrasings: PhrasingsWire,
    answers: ClassAnswers,
}

impl TryFrom<ClassificationWire> for ClassificationPrompt {
    type Error = String;

    fn try_from(w: ClassificationWire) -> Result<Self, String> {
        let phrasings = w.phrasings.into_list("classification")?;
        Ok(ClassificationPrompt {
            question: phrasings[0].clone(),
            phrasings,
            answers: w.answers,
        })
    }
}

/// Answer texts in the order of `ForgeryType::ALL`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassAnswers {
    pub face_swap: String,
    pub face_reenactment: String,
    pub face_editing: String,
    pub entire_face_synthesis: String,
}

impl ClassAnswers {
    pub fn as_array(&self) -> [&str; 4] {
        [
            &self.face_swap,
            &self.face_reenactment,
            &self.face_editing,
            &self.entire_face_synthesis,
        ]
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "PhrasingsWire")]
pub struct ArtifactsPrompt {
    /// The serving phrasing: `phrasings[0]`.
    pub question: String,
    pub phrasings: Vec<String>,
}

impl TryFrom<PhrasingsWire> for ArtifactsPrompt {
    type Error = String;

    fn try_from(w: PhrasingsWire) -> Result<Self, String> {
        let phrasings = w.into_list("artifacts")?;
        Ok(ArtifactsPrompt {
            question: phrasings[0].clone(),
            phrasings,
        })
    }
}

/// The tasks with a template library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    Detection,
    Classification,
    Artifacts,
}

#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error("cannot read prompts file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid prompts file {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("invalid prompts file {path}: `{field}` must not be empty")]
    Empty { path: String, field: &'static str },
    /// A dataset turn in this phrasing could not be told apart.
    #[error("invalid prompts file {path}: `{phrasing}` is listed for both {first} and {second}")]
    SharedPhrasing {
        path: String,
        phrasing: String,
        first: &'static str,
        second: &'static str,
    },
}

impl Prompts {
    pub fn embedded() -> Prompts {
        Self::parse(DEFAULT_PROMPTS, "<embedded>").expect("embedded prompts are valid")
    }

    /// The prompts file named by the settings, or the embedded one when empty.
    pub fn load(path: &str) -> Result<Prompts, PromptError> {
        if path.is_empty() {
            return Ok(Self::embedded());
        }
        let text =
            std::fs::read_to_string(Path::new(path)).map_err(|source| PromptError::Read {
                path: path.into(),
                source,
            })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &str) -> Result<Prompts, PromptError> {
        let prompts: Prompts = toml::from_str(text).map_err(|source| PromptError::Parse {
            path: path.into(),
            source,
        })?;
        // Each phrasing list is checked as it is read (`PhrasingsWire`).
        let required = [
            ("detection.yes", &prompts.detection.yes),
            ("detection.no", &prompts.detection.no),
        ];
        for (field, value) in required {
            if value.trim().is_empty() {
                return Err(PromptError::Empty {
                    path: path.into(),
                    field,
                });
            }
        }
        if prompts
            .classification
            .answers
            .as_array()
            .iter()
            .any(|a| a.trim().is_empty())
        {
            return Err(PromptError::Empty {
                path: path.into(),
                field: "classification.answers",
            });
        }
        prompts.no_shared_phrasing(path)?;
        Ok(prompts)
    }

    fn no_shared_phrasing(&self, path: &str) -> Result<(), PromptError> {
        let tasks = [
            (Task::Detection, "detection"),
            (Task::Classification, "classification"),
            (Task::Artifacts, "artifacts"),
        ];
        for (i, &(a, first)) in tasks.iter().enumerate() {
            for &(b, second) in &tasks[i + 1..] {
                let shared = self
                    .phrasings(a)
                    .iter()
                    .find(|q| self.phrasings(b).iter().any(|p| same_text(p, q)));
                if let Some(q) = shared {
                    return Err(PromptError::SharedPhrasing {
                        path: path.into(),
                        phrasing: q.clone(),
                        first,
                        second,
                    });
                }
            }
        }
        Ok(())
    }

    /// The template library of `task`; the first is what serving asks.
    pub fn phrasings(&self, task: Task) -> &[String] {
        match task {
            Task::Detection => &self.detection.phrasings,
            Task::Classification => &self.classification.phrasings,
            Task::Artifacts => &self.artifacts.phrasings,
        }
    }

    /// Every text serving shows the model or asks it to say, for building the
    /// generated test model's vocabulary. The other phrasings of each task are
    /// left out on purpose: the vocabulary has byte pieces, so they still
    /// tokenize, and adding them would change the generated weights, which
    /// an existing `model.tiny_dir` is not keyed by.
    pub fn all_texts(&self) -> Vec<&str> {
        let c = &self.chat;
        let mut texts = vec![
            c.system.as_str(),
            &c.user_prefix,
            &c.assistant_prefix,
            &self.detection.question,
            &self.detection.yes,
            &self.detection.no,
            &self.classification.question,
            &self.artifacts.question,
        ];
        texts.extend(self.classification.answers.as_array());
        texts
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

/// A question already answered about the same image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub question: String,
    pub answer: String,
}

/// The messages for asking `question` about an image after `history`; the
/// image marker leads the first user message, as in LLaVA's training data.
pub fn conversation(system: &str, marker: &str, history: &[Turn], question: &str) -> Vec<Message> {
    let mut messages = vec![Message {
        role: Role::System,
        content: system.to_string(),
    }];
    let mut first = true;
    let mut user = |text: &str| {
        let content = if first {
            format!("{marker}\n{text}")
        } else {
            text.to_string()
        };
        first = false;
        Message {
            role: Role::User,
            content,
        }
    };
    for turn in history {
        messages.push(user(&turn.question));
        messages.push(Message {
            role: Role::Assistant,
            content: turn.answer.clone(),
        });
    }
    messages.push(user(question));
    messages
}

impl VicunaFormat {
    /// Renders the messages and opens the assistant's answer.
    pub fn render(&self, messages: &[Message]) -> String {
        let mut out = String::new();
        for m in messages {
            match m.role {
                Role::System => {
                    out.push_str(&m.content);
                    out.push_str(&self.system_suffix);
                }
                Role::User => {
                    out.push_str(&self.user_prefix);
                    out.push_str(&m.content);
                    out.push_str(&self.user_suffix);
                }
                Role::Assistant => {
                    out.push_str(&self.assistant_prefix);
                    out.push(' ');
                    out.push_str(&m.content);
                    out.push_str(&self.assistant_suffix);
                }
            }
        }
        out.push_str(&self.assistant_prefix);
        out
    }
}

/// Splits a rendered prompt at the image marker: the text before it is the
/// prefix every task on the image shares; the text after is the task's own.
pub fn split_at_marker<'a>(rendered: &'a str, marker: &str) -> Option<(&'a str, &'a str)> {
    let at = rendered.find(marker)?;
    Some((&rendered[..at], &rendered[at + marker.len()..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_prompts_parse() {
        let p = Prompts::embedded();
        assert_eq!(p.detection.question, "Has this face been forged?");
        assert_eq!(p.classification.answers.as_array().len(), 4);
    }

    #[test]
    fn renders_llava_v1_conversation() {
        let p = Prompts::embedded();
        let history = [Turn {
            question: "Has this face been forged?".into(),
            answer: "Yes.".into(),
        }];
        let msgs = conversation("SYS", "<img>", &history, "Why?");
        let text = p.chat.render(&msgs);
        assert_eq!(
            text,
            "SYS USER: <img>\nHas this face been forged? ASSISTANT: Yes.</s>USER: Why? ASSISTANT:"
        );
    }

    #[test]
    fn every_task_shares_the_prefix_before_the_image() {
        let p = Prompts::embedded();
        let a = p.chat.render(&conversation("S", "<m>", &[], "q1"));
        let b = p
            .chat
            .render(&conversation("S", "<m>", &[], "another question"));
        let (pa, qa) = split_at_marker(&a, "<m>").unwrap();
        let (pb, _) = split_at_marker(&b, "<m>").unwrap();
        assert_eq!(pa, pb);
        assert_eq!(qa, "\nq1 ASSISTANT:");
    }

    #[test]
    fn template_libraries_serve_their_first_phrasing_and_accept_one_question() {
        let p = Prompts::embedded();
        // What serving asks is what it asked before the libraries existed.
        for (task, served, before) in [
            (
                Task::Detection,
                &p.detection.question,
                "Has this face been forged?",
            ),
            (
                Task::Classification,
                &p.classification.question,
                "What kind of technique is used to manipulate the image?",
            ),
            (
                Task::Artifacts,
                &p.artifacts.question,
                "Can you detail the specific regions of the facial image where artifacts is evident?",
            ),
        ] {
            assert_eq!(served, before);
            assert_eq!(&p.phrasings(task)[0], before);
        }
        assert!(p.phrasings(Task::Detection).len() >= 5);
        assert!(p.phrasings(Task::Classification).len() >= 5);
        assert!(p.phrasings(Task::Artifacts).len() >= 5);
        let single = with_detection("question = \"Is it fake?\"");
        let p = Prompts::parse(&single, "p.toml").unwrap();
        assert_eq!(p.detection.phrasings, ["Is it fake?"]);
        let both = single.replace(
            "question = \"Is it fake?\"",
            "question = \"Is it fake?\"\nquestions = [\"Fake?\"]",
        );
        let err = Prompts::parse(&both, "p.toml").unwrap_err().to_string();
        assert!(err.contains("not both"), "{err}");
        let twice = single.replace(
            "question = \"Is it fake?\"",
            "questions = [\"Is it fake?\", \"is it fake?\"]",
        );
        let err = Prompts::parse(&twice, "p.toml").unwrap_err().to_string();
        assert!(err.contains("listed twice"), "{err}");
    }

    /// The embedded file with the detection library replaced by `with`.
    fn with_detection(with: &str) -> String {
        let start = DEFAULT_PROMPTS
            .find("questions = [\n    \"Has this face")
            .unwrap();
        let end = start + DEFAULT_PROMPTS[start..].find(']').unwrap() + 1;
        format!(
            "{}{with}{}",
            &DEFAULT_PROMPTS[..start],
            &DEFAULT_PROMPTS[end..]
        )
    }

    fn error(text: &str) -> String {
        Prompts::parse(text, "p.toml").unwrap_err().to_string()
    }

    #[test]
    fn empty_question_is_rejected_by_name() {
        let text = DEFAULT_PROMPTS.replace("Has this face been forged?", " ");
        let err = error(&text);
        assert!(
            err.contains("detection.questions: phrasing 1 is empty"),
            "{err}"
        );
        let err = error(&with_detection("question = \"\""));
        assert!(
            err.contains("detection.question: phrasing 1 is empty"),
            "{err}"
        );
        let err = error(&with_detection("questions = []"));
        assert!(
            err.contains("detection.questions: give at least one phrasing"),
            "{err}"
        );
        let err = error(&with_detection(""));
        assert!(err.contains("detection.questions is missing"), "{err}");
        let err = error(&DEFAULT_PROMPTS.replace("Which method produced this forged face?", ""));
        assert!(
            err.contains("classification.questions: phrasing 5 is empty"),
            "{err}"
        );
    }

    #[test]
    fn phrasings_recognition_could_not_tell_apart_are_rejected() {
        let err = error(&with_detection(
            "questions = [\"Is it fake?\", \"is it fake.\"]",
        ));
        assert!(
            err.contains("detection.questions: `is it fake.` is listed twice"),
            "{err}"
        );
        let shared =
            with_detection("questions = [\"Is it fake?\", \"How was this face manipulated\"]");
        match Prompts::parse(&shared, "p.toml") {
            Err(PromptError::SharedPhrasing {
                phrasing,
                first,
                second,
                ..
            }) => {
                assert_eq!(phrasing, "How was this face manipulated");
                assert_eq!((first, second), ("detection", "classification"));
            }
            other => panic!("expected a shared phrasing, got {other:?}"),
        }
    }
}
