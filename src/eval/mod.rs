//! DFA-Bench in dfa (`dfa eval`): a labelled LLaVA-format dataset, run
//! through the serving engine, scored by `metrics` — detection with
//! calibration, classification, artifact description (text metrics and the
//! regions named) and free conversation, overall and per slice.
//!
//! `item` turns dataset records into what is asked and what is expected;
//! `predict` asks the engine (the retrain gate scores with it too); `run`
//! drives a dataset through; `lines`, `output`, `markdown` and `plots` write
//! the results; `compare` sets two models side by side.

pub mod compare;
pub mod item;
pub mod lines;
mod markdown;
pub mod output;
mod plots;
pub mod predict;
pub mod run;

pub use item::EvalItem;
pub use predict::predict;
