//! The domain: plain data and the rules on it (verdicts, forgery types,
//! artifacts, corrections, adapter records, prompts, digests). Everything else
//! depends on it; it imports nothing from the integrations.

pub mod access;
pub mod adapter;
pub mod artifacts;
pub mod correction;
pub mod dataset;
pub mod dialogue;
pub mod digest;
pub mod face;
pub mod lora;
pub mod prompts;
pub mod recognise;
pub mod request;
pub mod signature;
pub mod verdict;
pub mod verdict_query;

pub use artifacts::{parse_artifacts, render_artifacts};
pub use correction::Correction;
pub use digest::{sha256_file, sha256_hex};
pub use face::{
    most_suspicious, BBox, CropSquare, FaceBox, FaceMode, FaceVerdict, FacesSkipped, VerdictStatus,
};
pub use verdict::{
    AdapterIdentity, Answer, Artifact, ForgeryType, Label, Labelled, ModelIdentity, Timings,
    TypeScores, Verdict,
};
