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

fn starts_with_word(answer: &str, word: &str) -> bool {
    answer
        .trim()
        .to_lowercase()
        .starts_with(&word.trim().to_lowercase())
}

fn asks(prompts: &Prompts, task: Task, question: &str) -> bool {
    prompts
        .phrasings(task)
        .iter()
        .any(|p| same_text(p, question))
}

/// The technique a free-form classification answer names, when it names
/// exactly one (DFA-Instruct's answers vary: "The face was swapped.").
fn named_technique(answer: &str) -> Option<ForgeryType> {
    let a = answer.to_lowercase();
    let named: Vec<ForgeryType> = [
        (ForgeryType::FaceSwap, &["swap"][..]),
        (ForgeryType::FaceReenactment, &["reenact", "re-enact"][..]),
        (ForgeryType::FaceEditing, &["edit", "attribute"][..]),
        (
            ForgeryType::EntireFaceSynthesis,
            &["synthes", "entire face", "generated"][..],
        ),
    ]
    .into_iter()
    .filter(|(_, words)| words.iter().any(|w| a.contains(w)))
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
    fn every_listed_phrasing_is_recognised_and_free_answers_name_a_technique() {
        let p = Prompts::embedded();
        for q in p.phrasings(Task::Detection) {
            assert_eq!(
                recognise(&p, &turn(q, "No, it is authentic.")),
                Recognised::Detection(Some(Label::Real)),
                "{q}"
            );
        }
        assert!(p.phrasings(Task::Detection).len() > 1);
        for q in p.phrasings(Task::Classification) {
            assert_eq!(
                recognise(&p, &turn(q, "The face was swapped with another person's.")),
                Recognised::Classification(Some(ForgeryType::FaceSwap)),
                "{q}"
            );
        }
        for (answer, ty) in [
            (
                "Facial reenactment drives the expression.",
                Some(ForgeryType::FaceReenactment),
            ),
            (
                "Attribute editing changed the hair.",
                Some(ForgeryType::FaceEditing),
            ),
            (
                "The whole face was synthesized by a GAN.",
                Some(ForgeryType::EntireFaceSynthesis),
            ),
            ("Swapped and then edited.", None),
            ("Hard to say.", None),
        ] {
            let q = &p.phrasings(Task::Classification)[2];
            assert_eq!(
                recognise(&p, &turn(q, answer)),
                Recognised::Classification(ty),
                "{answer}"
            );
        }
        for q in p.phrasings(Task::Artifacts) {
            assert!(matches!(
                recognise(&p, &turn(q, "1. **Nose**: smeared.")),
                Recognised::Artifacts(a) if a.len() == 1
            ));
        }
    }
}
