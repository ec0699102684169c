//! The learning loop: reviewers' corrections and instruction datasets become
//! LoRA adapters that are trained, evaluated against the active one, and
//! promoted or rejected (`dfa retrain`).

pub mod dataset;
pub mod evaluate;
pub mod items;
mod plan;
pub mod retrain;
mod steps;
