//! What training and evaluation work on: items (an image, supervised turns,
//! and the label when known) built from reviewers' corrections or from a
//! LLaVA-format dataset, the stable held-out split, and the replay sample.

use std::path::PathBuf;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::correction::StandingCorrection;
use crate::domain::dialogue::{verdict_turns, Screened};
use crate::domain::prompts::{Prompts, Task, Turn};
use crate::domain::render_artifacts;
use crate::domain::{Artifact, CropSquare, ForgeryType, Label};

/// Where an item's image is.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageRef {
    /// In the image store, by sha256.
    Stored(String),
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Origin {
    Correction {
        request_id: Uuid,
        revision: i64,
        new: bool,
    },
    Dataset {
        line: usize,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Stable identity: decides the held-out split.
    pub key: String,
    pub origin: Origin,
    pub image: ImageRef,
    /// The square of the image to learn from, resized as the face stage
    /// resizes crops (`faces.crop_px`): the corrected verdict's primary
    /// face, which is what the model saw. None: the whole image.
    pub crop: Option<CropSquare>,
    /// Supervised turns, each asked fresh about the image as the engine does
    /// (a turn's history is the turns before it in a dataset conversation).
    pub turns: Vec<Turn>,
    pub history_per_turn: bool,
    pub label: Option<Label>,
    pub forgery_type: Option<ForgeryType>,
}

impl Item {
    pub fn is_new_correction(&self) -> bool {
        matches!(self.origin, Origin::Correction { new: true, .. })
    }

    pub fn is_dataset(&self) -> bool {
        matches!(self.origin, Origin::Dataset { .. })
    }
}

/// The turns a label, type and artifact list teach, in the serving prompts:
/// the conversation a verdict with these values holds (`domain::dialogue`).
pub fn supervised_turns(
    prompts: &Prompts,
    label: Label,
    forgery_type: Option<ForgeryType>,
    artifacts: &[Artifact],
) -> Vec<Turn> {
    let fake = label == Label::Fake;
    let explanation = (fake && !artifacts.is_empty()).then(|| render_artifacts(artifacts));
    verdict_turns(
        prompts,
        &Screened {
            label,
            forgery_type: forgery_type.filter(|_| fake),
            explanation: explanation.as_deref(),
        },
    )
}

/// A standing correction as a training item; `watermark` is the last
/// revision the active adapter learned from. The correction says what the
/// verdict's subject is: its primary face's crop when it had faces, else
/// the whole image. A `no_face` verdict (nothing screened, no label of its
/// own) is no exception: the reviewer labelled the image, which is learned
/// whole, as `faces.mode = "whole_image"` would have screened it.
pub fn correction_item(
    row: &StandingCorrection,
    prompts: &Prompts,
    watermark: i64,
) -> Option<Item> {
    let (label, forgery_type) = (row.label, row.forgery_type);
    let artifacts: Vec<Artifact> = row
        .artifacts
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    Some(Item {
        key: format!("correction:{}", row.request_id),
        origin: Origin::Correction {
            request_id: row.request_id,
            revision: row.revision,
            new: row.revision > watermark,
        },
        image: ImageRef::Stored(row.image_sha256.clone()),
        crop: row.crop(),
        turns: supervised_turns(prompts, label, forgery_type, &artifacts),
        history_per_turn: false,
        label: Some(label),
        forgery_type,
    })
}

/// `turns` with each task's question asked in a phrasing of its template
/// library (`config/prompts.toml`), as DFA-Instruct's data is: chosen by a
/// generator seeded with `seed` and the item's `key`, so an item is asked the
/// same way in every run with that seed while items differ. Free
/// conversation turns are left as they are.
pub fn rephrased(turns: &[Turn], prompts: &Prompts, seed: u64, key: &str) -> Vec<Turn> {
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ u64::from_be_bytes(first));
    turns
        .iter()
        .map(|t| {
            let task = [Task::Detection, Task::Classification, Task::Artifacts]
                .into_iter()
                .find(|task| prompts.phrasings(*task).iter().any(|q| q == &t.question));
            match task.and_then(|task| prompts.phrasings(task).choose(&mut rng)) {
                Some(q) => Turn {
                    question: q.clone(),
                    answer: t.answer.clone(),
                },
                None => t.clone(),
            }
        })
        .collect()
}

/// True when the item belongs to the held-out split. A hash of the key, so
/// the same item is held out in every run and never trained on.
pub fn is_held_out(key: &str, fraction: f64) -> bool {
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) as f64 / u64::MAX as f64) < fraction
}

/// The training set: every new item plus a seeded sample of old corrections,
/// `ratio` per new one (all of them when fewer).
pub fn with_replay(new: Vec<Item>, old: Vec<Item>, ratio: f64, seed: u64) -> (Vec<Item>, usize) {
    let want = ((new.len() as f64) * ratio).ceil() as usize;
    let mut old = old;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    old.shuffle(&mut rng);
    old.truncate(want);
    let replayed = old.len();
    let mut all = new;
    all.extend(old);
    (all, replayed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(revision: i64, label: &str, ty: Option<&str>) -> StandingCorrection {
        StandingCorrection {
            revision,
            request_id: Uuid::from_u128(revision as u128),
            reviewer: "r".into(),
            label: label.parse().unwrap(),
            forgery_type: ty.map(|t| t.parse().unwrap()),
            artifacts: Some(serde_json::json!([{"region": "Eyes", "text": "odd glints."}])),
            note: None,
            image_sha256: "ab".repeat(32),
            verdict_label: Some(Label::Real),
            crop_x: None,
            crop_y: None,
            crop_side: None,
        }
    }

    #[test]
    fn corrections_teach_detection_type_and_artifacts() {
        let p = Prompts::embedded();
        let fake = correction_item(&row(5, "fake", Some("face_swap")), &p, 3).unwrap();
        assert!(fake.is_new_correction());
        assert_eq!(fake.turns.len(), 3);
        assert_eq!(fake.turns[0].answer, "Yes.");
        assert_eq!(fake.turns[1].answer, p.classification.answers.face_swap);
        assert!(fake.turns[2].answer.starts_with("1. **Eyes**"));
        let real = correction_item(&row(2, "real", None), &p, 3).unwrap();
        assert!(!real.is_new_correction());
        assert_eq!(real.turns.len(), 1);
        assert_eq!(real.turns[0].answer, "No.");
        assert_eq!(real.crop, None, "a verdict of the whole image");
    }

    #[test]
    fn a_face_verdicts_correction_teaches_on_its_primary_faces_crop() {
        let p = Prompts::embedded();
        let mut face = row(7, "fake", Some("face_editing"));
        (face.crop_x, face.crop_y, face.crop_side) = (Some(120), Some(40), Some(300));
        let item = correction_item(&face, &p, 3).unwrap();
        assert_eq!(
            item.crop,
            Some(CropSquare {
                x: 120,
                y: 40,
                side: 300
            })
        );
        // No face found: no label of the verdict's own, and the whole image.
        let mut none = row(8, "fake", None);
        none.verdict_label = None;
        let item = correction_item(&none, &p, 3).unwrap();
        assert_eq!((item.label, item.crop), (Some(Label::Fake), None));
        assert_eq!(item.turns[0].answer, "Yes.");
    }

    #[test]
    fn training_asks_in_the_template_librarys_phrasings_seeded_per_item() {
        let p = Prompts::embedded();
        let item = correction_item(&row(5, "fake", Some("face_swap")), &p, 3).unwrap();
        let asked: std::collections::HashSet<String> = (0..40)
            .map(|i| {
                rephrased(&item.turns, &p, 42, &format!("correction:{i}"))[0]
                    .question
                    .clone()
            })
            .collect();
        assert!(asked.len() > 2, "{asked:?}");
        assert!(asked.contains(&p.detection.question), "{asked:?}");
        let another_seed = (0..40).any(|i| {
            let key = format!("correction:{i}");
            rephrased(&item.turns, &p, 42, &key) != rephrased(&item.turns, &p, 7, &key)
        });
        assert!(another_seed, "the seed changes the choices");
        assert!(asked
            .iter()
            .all(|q| p.phrasings(Task::Detection).contains(q)));
        let once = rephrased(&item.turns, &p, 42, &item.key);
        assert_eq!(once, rephrased(&item.turns, &p, 42, &item.key));
        assert!(p
            .phrasings(Task::Classification)
            .contains(&once[1].question));
        assert!(p.phrasings(Task::Artifacts).contains(&once[2].question));
        let answers: Vec<&str> = once.iter().map(|t| t.answer.as_str()).collect();
        let before: Vec<&str> = item.turns.iter().map(|t| t.answer.as_str()).collect();
        assert_eq!(answers, before, "answers are kept");
        let other = Turn {
            question: "Why?".into(),
            answer: "Because.".into(),
        };
        assert_eq!(
            rephrased(std::slice::from_ref(&other), &p, 1, "k"),
            vec![other]
        );
    }

    #[test]
    fn the_split_is_stable_and_near_its_fraction() {
        let held = (0..2000)
            .filter(|i| is_held_out(&format!("k{i}"), 0.2))
            .count();
        assert!((300..500).contains(&held), "{held}");
        assert_eq!(is_held_out("k7", 0.2), is_held_out("k7", 0.2));
        assert!(!is_held_out("k7", 0.0));
    }

    #[test]
    fn replay_samples_old_items_deterministically() {
        let p = Prompts::embedded();
        let items = |range: std::ops::Range<i64>| -> Vec<Item> {
            range
                .map(|r| correction_item(&row(r, "real", None), &p, 100).unwrap())
                .collect()
        };
        let (a, n) = with_replay(items(200..204), items(0..50), 1.5, 9);
        let (b, _) = with_replay(items(200..204), items(0..50), 1.5, 9);
        assert_eq!(n, 6);
        assert_eq!(a.len(), 10);
        assert_eq!(a, b);
        let (_, all) = with_replay(items(200..204), items(0..3), 1.0, 9);
        assert_eq!(all, 3);
    }
}
