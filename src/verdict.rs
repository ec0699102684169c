//! The `Verdict`: the one result type shared by the CLI, the results topic and
//! Postgres. Documented in `docs/verdict.md`; keep the two in step.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    Real,
    Fake,
}

/// The four forgery families of DFA-Instruct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForgeryType {
    FaceSwap,
    FaceReenactment,
    FaceEditing,
    EntireFaceSynthesis,
}

impl ForgeryType {
    pub const ALL: [ForgeryType; 4] = [
        ForgeryType::FaceSwap,
        ForgeryType::FaceReenactment,
        ForgeryType::FaceEditing,
        ForgeryType::EntireFaceSynthesis,
    ];
}

/// Normalised likelihoods of the four forgery types; they sum to 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TypeScores {
    pub face_swap: f32,
    pub face_reenactment: f32,
    pub face_editing: f32,
    pub entire_face_synthesis: f32,
}

impl TypeScores {
    pub fn from_array(p: [f32; 4]) -> Self {
        TypeScores {
            face_swap: p[0],
            face_reenactment: p[1],
            face_editing: p[2],
            entire_face_synthesis: p[3],
        }
    }

    pub fn as_array(&self) -> [f32; 4] {
        [
            self.face_swap,
            self.face_reenactment,
            self.face_editing,
            self.entire_face_synthesis,
        ]
    }

    /// The most likely type (the first on ties).
    pub fn best(&self) -> ForgeryType {
        let scores = self.as_array();
        let mut best = 0;
        for (i, s) in scores.iter().enumerate() {
            if *s > scores[best] {
                best = i;
            }
        }
        ForgeryType::ALL[best]
    }
}

/// One region of an artifact description ("Forehead", "Eyes", …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub region: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub question: String,
    pub answer: String,
}

/// Which weights produced a verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelIdentity {
    pub base_sha256: String,
    pub mmproj_sha256: String,
    pub adapter: Option<AdapterIdentity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterIdentity {
    pub id: String,
    pub sha256: String,
    pub scale: f32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub decode_image: f64,
    pub encode_image: f64,
    pub prefill: f64,
    pub generate: f64,
    pub total: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub request_id: Uuid,
    pub label: Label,
    pub p_fake: f32,
    /// The most likely forgery type; null when the label is `real`.
    pub forgery_type: Option<ForgeryType>,
    pub type_scores: TypeScores,
    /// The artifact description split by region; empty when none was generated
    /// or the text was not a numbered list.
    pub artifacts: Vec<Artifact>,
    /// The raw artifact description, when one was generated.
    pub explanation: Option<String>,
    pub answers: Vec<Answer>,
    pub model: ModelIdentity,
    pub timings_ms: Timings,
    pub created_at: DateTime<Utc>,
}

impl Label {
    pub fn from_score(p_fake: f32, threshold: f32) -> Label {
        if p_fake >= threshold {
            Label::Fake
        } else {
            Label::Real
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_follows_threshold() {
        assert_eq!(Label::from_score(0.5, 0.5), Label::Fake);
        assert_eq!(Label::from_score(0.49, 0.5), Label::Real);
    }

    #[test]
    fn best_type_is_the_argmax() {
        let s = TypeScores::from_array([0.1, 0.2, 0.6, 0.1]);
        assert_eq!(s.best(), ForgeryType::FaceEditing);
    }

    #[test]
    fn serialises_with_snake_case_names() {
        let json = serde_json::to_value(ForgeryType::EntireFaceSynthesis).unwrap();
        assert_eq!(json, "entire_face_synthesis");
        assert_eq!(serde_json::to_value(Label::Fake).unwrap(), "fake");
    }
}
