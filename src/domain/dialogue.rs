//! A stored verdict as the conversation DFA-GPT holds about its image, or
//! about one of its faces: the detection turn, the classification turn (for
//! a fake), the artifact description when there is one, then every
//! follow-up so far about the same face. Reviewers' questions and the
//! worker's own questions are asked after it.

use super::face::FaceVerdict;
use super::prompts::{Prompts, Turn};
use super::verdict::{ForgeryType, Label};

/// What the model said about an image when it screened it.
#[derive(Debug, Clone, PartialEq)]
pub struct Screened<'a> {
    pub label: Label,
    pub forgery_type: Option<ForgeryType>,
    pub explanation: Option<&'a str>,
}

impl<'a> Screened<'a> {
    /// What the model said about one face when it screened its crop.
    pub fn of_face(face: &'a FaceVerdict) -> Screened<'a> {
        Screened {
            label: face.label,
            forgery_type: face.forgery_type,
            explanation: face.explanation.as_deref(),
        }
    }
}

/// The engine's conversation-cache key (`Tasks::image_key`) of a verdict's
/// conversation: the worker's own questions and `dfa serve`'s follow-ups use
/// it alike. Per verdict, not per image, so that two tenants' verdicts on the
/// same image never share cached state (whose reuse would be observable).
pub fn conversation_key(request_id: uuid::Uuid) -> String {
    format!("verdict:{request_id}")
}

/// The cache key of the conversation about one face of a verdict. `None`,
/// the verdict's own subject (its most suspicious face, or the whole image
/// when it has no face), keeps `conversation_key`: the request's own
/// questions are about that subject, so reviewers' default follow-ups
/// continue their cached state. Every other face has a conversation (and
/// a crop) of its own, which must never restore another face's state.
pub fn face_conversation_key(request_id: uuid::Uuid, face: Option<u32>) -> String {
    match face {
        None => conversation_key(request_id),
        Some(i) => format!("verdict:{request_id}:face:{i}"),
    }
}

/// The answer text for a yes/no prompt word ("Yes" → "Yes."), as DFA-GPT
/// answers the detection question.
pub fn sentence(word: &str) -> String {
    let w = word.trim();
    if w.ends_with(['.', '!', '?']) {
        w.to_string()
    } else {
        format!("{w}.")
    }
}

/// The verdict's own turns, in the order the model produced them.
pub fn verdict_turns(prompts: &Prompts, v: &Screened<'_>) -> Vec<Turn> {
    let mut turns = vec![Turn {
        question: prompts.detection.question.clone(),
        answer: sentence(match v.label {
            Label::Fake => &prompts.detection.yes,
            Label::Real => &prompts.detection.no,
        }),
    }];
    if let (Label::Fake, Some(t)) = (v.label, v.forgery_type) {
        let answers = prompts.classification.answers.as_array();
        let index = ForgeryType::ALL.iter().position(|x| *x == t).unwrap_or(0);
        turns.push(Turn {
            question: prompts.classification.question.clone(),
            answer: answers[index].to_string(),
        });
    }
    if let Some(text) = v.explanation.filter(|t| !t.trim().is_empty()) {
        turns.push(Turn {
            question: prompts.artifacts.question.clone(),
            answer: text.to_string(),
        });
    }
    turns
}

/// The verdict's turns followed by the earlier follow-ups (question, answer).
pub fn history(prompts: &Prompts, v: &Screened<'_>, follow_ups: &[Turn]) -> Vec<Turn> {
    let mut turns = verdict_turns(prompts, v);
    turns.extend_from_slice(follow_ups);
    turns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fake_has_detection_classification_and_artifacts() {
        let p = Prompts::embedded();
        let v = Screened {
            label: Label::Fake,
            forgery_type: Some(ForgeryType::FaceEditing),
            explanation: Some("1. Eyes: mismatched."),
        };
        let turns = verdict_turns(&p, &v);
        assert_eq!(turns.len(), 3);
        assert_eq!(turns[0].question, p.detection.question);
        assert_eq!(turns[0].answer, "Yes.");
        assert_eq!(turns[1].question, p.classification.question);
        assert_eq!(turns[1].answer, p.classification.answers.face_editing);
        assert_eq!(turns[2].question, p.artifacts.question);
        assert_eq!(turns[2].answer, "1. Eyes: mismatched.");
    }

    #[test]
    fn a_real_face_has_only_the_detection_turn() {
        let p = Prompts::embedded();
        let v = Screened {
            label: Label::Real,
            forgery_type: None,
            explanation: None,
        };
        let turns = verdict_turns(&p, &v);
        assert_eq!(turns.len(), 1);
        assert_eq!(turns[0].answer, "No.");
    }

    #[test]
    fn each_other_face_has_a_cache_key_of_its_own() {
        let id = uuid::Uuid::new_v4();
        assert_eq!(face_conversation_key(id, None), conversation_key(id));
        let (one, two) = (
            face_conversation_key(id, Some(1)),
            face_conversation_key(id, Some(2)),
        );
        assert_ne!(one, conversation_key(id));
        assert_ne!(one, two);
        assert_ne!(one, face_conversation_key(uuid::Uuid::new_v4(), Some(1)));
    }

    #[test]
    fn follow_ups_come_after_the_verdict() {
        let p = Prompts::embedded();
        let v = Screened {
            label: Label::Real,
            forgery_type: None,
            explanation: Some("  "),
        };
        let earlier = [Turn {
            question: "Why?".into(),
            answer: "Because.".into(),
        }];
        let h = history(&p, &v, &earlier);
        assert_eq!(h.len(), 2, "a blank explanation is no turn");
        assert_eq!(h[1], earlier[0]);
    }
}
