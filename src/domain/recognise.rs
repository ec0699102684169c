//! Which of DFA-GPT's tasks a dataset turn is, and what its answer states:
//! how a LLaVA-format item (DFA-Instruct) yields its label, forgery type,
//! reference artifact description and free-conversation turns. Pure; the
//! dataset readers (`learning::dataset`, `eval`) and the trainer use it.

use super::prompts::{Prompts, Task, Turn};
use super::{parse_artifacts, Artifact, ForgeryType, Label};

/// A turn, recognised by its question.
#[derive(Debug, Clone, PartialEq)]
pub enum Recognised {
    /// The detection question; the label when the answer says yes or no.
    Detection(Option<Label>),
    /// The classification question; the type when the answer names one.
    Classification(Option<ForgeryType>),
    /// The artifact question; the regions and their descriptions.
    Artifacts(Vec<Artifact>),
    /// Anything else: free conversation.
    Conversation,
}

/// Questions compare without case, surrounding space and final punctuation.
pub fn same_text(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.trim()
            .trim_end_matches(['.', '?', '!'])
            .trim()
            .to_string()
    };
    norm(a).eq_ignore_ascii_case(&norm(b))
}

/// True when `answer` opens with `word` as a whole word: "Yes, it has." and
/// "No." do, "Nothing suggests it" and "Not sure" do not open with "No".
fn starts_with_word(answer: &str, word: &str) -> bool {
    let (answer, word) = (answer.trim().to_lowercase(), word.trim().to_lowercase());
    answer
        .strip_prefix(&word)
        .is_some_and(|rest| !rest.starts_with(char::is_alphanumeric))
}

fn asks(prompts: &Prompts, task: Task, question: &str) -> bool {
    prompts
        .phrasings(task)
        .iter()
        .any(|p| same_text(p, question))
}

/// What a free-form classification answer may call each technique
/// (DFA-Instruct's answers vary: "The face was swapped.").
const TECHNIQUE_WORDS: [(ForgeryType, &[&str]); 4] = [
    (ForgeryType::FaceSwap, &["swap"]),
    (ForgeryType::FaceReenactment, &["reenact", "re-enact"]),
    (ForgeryType::FaceEditing, &["edit", "attribute"]),
    (
        ForgeryType::EntireFaceSynthesis,
        &["synthes", "entire face", "generated"],
    ),
];

/// True when `word` begins a word of `text` (lowercase): after a
/// non-letter, or after "face" as in "FaceSwap". So "edited" counts and
/// "credit" does not.
fn mentions(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let before = &text[..at];
        before
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphabetic())
            || before.ends_with("face")
    })
}

/// The technique a free-form classification answer names, when it names
/// exactly one; an answer naming two ("swapped, then edited") says none.
fn named_technique(answer: &str) -> Option<ForgeryType> {
    let a = answer.to_lowercase();
    let named: Vec<ForgeryType> = TECHNIQUE_WORDS
        .into_iter()
        .filter(|(_, words)| words.iter().any(|w| mentions(&a, w)))
        .map(|(t, _)| t)
        .collect();
    match named.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// The task `turn` asks for, and what its answer says.
pub fn recognise(prompts: &Prompts, turn: &Turn) -> Recognised {
    if asks(prompts, Task::Detection, &turn.question) {
        let label = if starts_with_word(&turn.answer, &prompts.detection.yes) {
            Some(Label::Fake)
        } else if starts_with_word(&turn.answer, &prompts.detection.no) {
            Some(Label::Real)
        } else {
            None
        };
        return Recognised::Detection(label);
    }
    if asks(prompts, Task::Classification, &turn.question) {
        let answers = prompts.classification.answers.as_array();
        let ty = answers
            .iter()
            .position(|a| same_text(a, &turn.answer))
            .map(|i| ForgeryType::ALL[i])
            .or_else(|| named_technique(&turn.answer));
        return Recognised::Classification(ty);
    }
    if asks(prompts, Task::Artifacts, &turn.question) {
        return Recognised::Artifacts(parse_artifacts(&turn.answer));
    }
    Recognised::Conversation
}

/// The label and type a conversation states, the last statement winning.
pub fn stated_label_and_type(
    prompts: &Prompts,
    turns: &[Turn],
) -> (Option<Label>, Option<ForgeryType>) {
    let (mut label, mut ty) = (None, None);
    for t in turns {
        match recognise(prompts, t) {
            Recognised::Detection(Some(l)) => label = Some(l),
            Recognised::Classification(Some(t)) => ty = Some(t),
            _ => {}
        }
    }
    (label, ty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(q: &str, a: &str) -> Turn {
        Turn {
            question: q.into(),
            answer: a.into(),
        }
    }

    #[test]
    fn recognises_each_task_by_its_question() {
        let p = Prompts::embedded();
        assert_eq!(
            recognise(&p, &turn("has this face been forged", "Yes, it has.")),
            Recognised::Detection(Some(Label::Fake))
        );
        assert_eq!(
            recognise(&p, &turn("Has this face been forged?", "Maybe.")),
            Recognised::Detection(None)
        );
        assert_eq!(
            recognise(
                &p,
                &turn(&p.classification.question, "Face reenactment is used.")
            ),
            Recognised::Classification(Some(ForgeryType::FaceReenactment))
        );
        let Recognised::Artifacts(a) = recognise(
            &p,
            &turn(
                &p.artifacts.question,
                "1. **Eyes**: odd glints.\n2. **Nose**: smeared.",
            ),
        ) else {
            panic!("artifacts question not recognised")
        };
        assert_eq!(a.len(), 2);
        assert_eq!(
            recognise(&p, &turn("Why do you think so?", "Because.")),
            Recognised::Conversation
        );
    }

    #[test]
    fn every_listed_phrasing_is_recognised_as_its_task() {
        let p = Prompts::embedded();
        assert!(p.phrasings(Task::Detection).len() > 1);
        for q in p.phrasings(Task::Detection) {
            assert_eq!(
                recognise(&p, &turn(q, "No, it is authentic.")),
                Recognised::Detection(Some(Label::Real)),
                "{q}"
            );
            // As a dataset writes it: other case, no final punctuation.
            let loose = q.trim_end_matches('?').to_uppercase();
            assert_eq!(
                recognise(&p, &turn(&loose, "Yes, it has been forged.")),
                Recognised::Detection(Some(Label::Fake)),
                "{loose}"
            );
        }
        for q in p.phrasings(Task::Classification) {
            for (i, answer) in p.classification.answers.as_array().iter().enumerate() {
                assert_eq!(
                    recognise(&p, &turn(q, answer)),
                    Recognised::Classification(Some(ForgeryType::ALL[i])),
                    "{q} / {answer}"
                );
            }
        }
        for q in p.phrasings(Task::Artifacts) {
            assert!(
                matches!(
                    recognise(&p, &turn(q, "1. **Nose**: smeared.")),
                    Recognised::Artifacts(a) if a.len() == 1
                ),
                "{q}"
            );
        }
        assert_eq!(
            recognise(&p, &turn("Is this face real or fake today?", "Yes.")),
            Recognised::Conversation
        );
    }

    #[test]
    fn detection_answers_state_a_label_only_when_they_open_with_yes_or_no() {
        let p = Prompts::embedded();
        for (answer, label) in [
            ("Yes, this face has been forged.", Some(Label::Fake)),
            ("yes", Some(Label::Fake)),
            ("No, this is a real face.", Some(Label::Real)),
            ("No.", Some(Label::Real)),
            ("Not sure.", None),
            ("Nothing about it looks wrong.", None),
            ("Yesterday's photo, I think.", None),
            ("It has been forged.", None),
        ] {
            assert_eq!(
                recognise(&p, &turn(&p.detection.phrasings[1], answer)),
                Recognised::Detection(label),
                "{answer}"
            );
        }
    }

    #[test]
    fn free_classification_answers_name_one_technique_or_none() {
        let p = Prompts::embedded();
        let q = &p.phrasings(Task::Classification)[2];
        for (answer, ty) in [
            (
                "The face was swapped with another person's.",
                Some(ForgeryType::FaceSwap),
            ),
            ("Face swapping.", Some(ForgeryType::FaceSwap)),
            ("FaceSwap was applied.", Some(ForgeryType::FaceSwap)),
            (
                "Facial reenactment drives the expression.",
                Some(ForgeryType::FaceReenactment),
            ),
            (
                "The face was re-enacted.",
                Some(ForgeryType::FaceReenactment),
            ),
            ("The face was edited.", Some(ForgeryType::FaceEditing)),
            (
                "Attribute manipulation changed the hair.",
                Some(ForgeryType::FaceEditing),
            ),
            (
                "The whole face was synthesized by a GAN.",
                Some(ForgeryType::EntireFaceSynthesis),
            ),
            (
                "The entire face is fake.",
                Some(ForgeryType::EntireFaceSynthesis),
            ),
            (
                "A GAN-generated face.",
                Some(ForgeryType::EntireFaceSynthesis),
            ),
            ("Swapped and then edited.", None),
            ("Either reenactment or synthesis.", None),
            ("Hard to say, no credit to the forger.", None),
        ] {
            assert_eq!(
                recognise(&p, &turn(q, answer)),
                Recognised::Classification(ty),
                "{answer}"
            );
        }
    }

    #[test]
    fn a_dataset_item_in_other_listed_phrasings_keeps_its_label_type_and_artifacts() {
        let p = Prompts::embedded();
        let line = serde_json::json!({"id": "x1", "image": "a.png", "conversations": [
            {"from": "human", "value": format!("<image>\n{}", p.detection.phrasings[2])},
            {"from": "gpt", "value": "Yes, the face has been manipulated."},
            {"from": "human", "value": p.classification.phrasings[4].to_lowercase()},
            {"from": "gpt", "value": "The identity was swapped."},
            {"from": "human", "value": p.artifacts.phrasings[1]},
            {"from": "gpt", "value": "1. **Eyes**: odd glints.\n2. **Mouth and Lips**: blurred."},
            {"from": "human", "value": "Why?"},
            {"from": "gpt", "value": "Because of the glints."}
        ]})
        .to_string();
        let real = serde_json::json!({"image": "b.png", "conversations": [
            {"from": "human", "value": format!("<image>\n{}", p.detection.phrasings[1])},
            {"from": "gpt", "value": "No, it is real."}
        ]})
        .to_string();
        let text = format!("{line}\n{real}\n");
        let (records, errors) =
            super::super::dataset::parse_records(&text, std::path::Path::new("/d"), &p);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].label, Some(Label::Fake));
        assert_eq!(records[0].forgery_type, Some(ForgeryType::FaceSwap));
        let kinds: Vec<Recognised> = records[0].turns.iter().map(|t| recognise(&p, t)).collect();
        assert!(
            matches!(&kinds[2], Recognised::Artifacts(a) if a.len() == 2),
            "{kinds:?}"
        );
        assert_eq!(kinds[3], Recognised::Conversation);
        assert_eq!(records[1].label, Some(Label::Real));
        assert_eq!(records[1].forgery_type, None);
    }
}
