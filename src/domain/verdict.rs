//! The `Verdict`: the one result type shared by the CLI, the results topic and
//! Postgres. Documented in `docs/verdict.md`; keep the two in step.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::face::{FaceMode, FaceVerdict, FacesSkipped, VerdictStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Label {
    Real,
    Fake,
}

/// The four forgery families of DFA-Instruct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
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

    /// The name used in messages, the database and datasets.
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeryType::FaceSwap => "face_swap",
            ForgeryType::FaceReenactment => "face_reenactment",
            ForgeryType::FaceEditing => "face_editing",
            ForgeryType::EntireFaceSynthesis => "entire_face_synthesis",
        }
    }

    /// The name people read (pages, charts).
    pub fn human_name(self) -> &'static str {
        match self {
            ForgeryType::FaceSwap => "Face swap",
            ForgeryType::FaceReenactment => "Face reenactment",
            ForgeryType::FaceEditing => "Face editing",
            ForgeryType::EntireFaceSynthesis => "Entire-face synthesis",
        }
    }
}

/// An unknown label or forgery type name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{name}`")]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
}

impl std::str::FromStr for ForgeryType {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ForgeryType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "forgery_type",
                name: s.to_string(),
            })
    }
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Real => "real",
            Label::Fake => "fake",
        }
    }
}

impl std::str::FromStr for Label {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Label::Real, Label::Fake]
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "label",
                name: s.to_string(),
            })
    }
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
    /// Finding faces and cropping them (0 with `faces.mode = "off"`).
    #[serde(default)]
    pub detect_faces: f64,
    pub encode_image: f64,
    pub prefill: f64,
    pub generate: f64,
    pub total: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub request_id: Uuid,
    /// `no_face`: detection found no face, nothing was screened.
    #[serde(default)]
    pub status: VerdictStatus,
    /// The most suspicious face's label (or the whole image's); null when
    /// the status is `no_face`.
    pub label: Option<Label>,
    pub p_fake: Option<f32>,
    /// The most likely forgery type; null unless the label is `fake`.
    pub forgery_type: Option<ForgeryType>,
    pub type_scores: Option<TypeScores>,
    /// The artifact description split by region; empty when none was generated
    /// or the text was not a numbered list.
    pub artifacts: Vec<Artifact>,
    /// The raw artifact description, when one was generated.
    pub explanation: Option<String>,
    pub answers: Vec<Answer>,
    /// How faces were found: `detect`, `whole_image` or `off`.
    #[serde(default)]
    pub face_mode: FaceMode,
    /// Faces analysed (null with `faces.mode = "off"`).
    #[serde(default)]
    pub face_count: Option<u32>,
    /// The face whose verdict the image carries (`faces[i].index`).
    #[serde(default)]
    pub primary_face: Option<u32>,
    /// Every face analysed, largest first.
    #[serde(default)]
    pub faces: Vec<FaceVerdict>,
    #[serde(default)]
    pub faces_skipped: FacesSkipped,
    /// Set when the same image bytes were analysed before by the same model
    /// and that analysis was reused: the verdict it came from.
    #[serde(default)]
    pub reused_from: Option<Uuid>,
    pub model: ModelIdentity,
    pub timings_ms: Timings,
    pub created_at: DateTime<Utc>,
}

impl Verdict {
    /// The verdict's screening as `Labelled`, when it was screened.
    pub fn labelled(&self) -> Option<Labelled> {
        Some(Labelled {
            label: self.label?,
            p_fake: self.p_fake?,
            forgery_type: self.forgery_type,
            type_scores: self.type_scores?,
        })
    }

    /// The face follow-ups are about unless they name one.
    pub fn primary(&self) -> Option<&FaceVerdict> {
        let i = self.primary_face?;
        self.faces.iter().find(|f| f.index == i)
    }
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

/// The labelling rule, shared by verdicts and by the retraining gate's
/// evaluation: `fake` at or above the threshold, and only then a forgery
/// type, the most likely one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Labelled {
    pub label: Label,
    pub p_fake: f32,
    pub forgery_type: Option<ForgeryType>,
    pub type_scores: TypeScores,
}

impl Labelled {
    /// Missing scores (an analysis that did not screen) count as p_fake 0 and
    /// uniform type scores.
    pub fn from_scores(
        p_fake: Option<f32>,
        type_scores: Option<TypeScores>,
        threshold: f32,
    ) -> Labelled {
        let p_fake = p_fake.unwrap_or(0.0);
        let type_scores = type_scores.unwrap_or(TypeScores::from_array([0.25; 4]));
        let label = Label::from_score(p_fake, threshold);
        Labelled {
            label,
            p_fake,
            forgery_type: (label == Label::Fake).then(|| type_scores.best()),
            type_scores,
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
    fn only_a_fake_label_carries_a_type() {
        let scores = TypeScores::from_array([0.1, 0.2, 0.6, 0.1]);
        let fake = Labelled::from_scores(Some(0.7), Some(scores), 0.5);
        assert_eq!(fake.label, Label::Fake);
        assert_eq!(fake.forgery_type, Some(ForgeryType::FaceEditing));
        let real = Labelled::from_scores(Some(0.3), Some(scores), 0.5);
        assert_eq!((real.label, real.forgery_type), (Label::Real, None));
        let unscreened = Labelled::from_scores(None, None, 0.0);
        assert_eq!(unscreened.p_fake, 0.0);
        assert_eq!(unscreened.forgery_type, Some(ForgeryType::FaceSwap));
        assert_eq!(unscreened.type_scores.as_array(), [0.25; 4]);
    }

    #[test]
    fn best_type_is_the_argmax() {
        let s = TypeScores::from_array([0.1, 0.2, 0.6, 0.1]);
        assert_eq!(s.best(), ForgeryType::FaceEditing);
    }

    #[test]
    fn names_parse_back_and_match_serde() {
        for t in ForgeryType::ALL {
            assert_eq!(t.as_str().parse::<ForgeryType>(), Ok(t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
        for l in [Label::Real, Label::Fake] {
            assert_eq!(l.as_str().parse::<Label>(), Ok(l));
            assert_eq!(serde_json::to_value(l).unwrap(), l.as_str());
        }
        assert!("deepfake".parse::<ForgeryType>().is_err());
        assert!("Fake".parse::<Label>().is_err());
    }

    #[test]
    fn serialises_with_snake_case_names() {
        let json = serde_json::to_value(ForgeryType::EntireFaceSynthesis).unwrap();
        assert_eq!(json, "entire_face_synthesis");
        assert_eq!(serde_json::to_value(Label::Fake).unwrap(), "fake");
    }
}
