//! DFA-Bench in dfa (`dfa eval`): a labelled LLaVA-format dataset, run
//! through the serving engine, scored by `metrics` — detection with
//! calibration, classification, artifact description (text metrics and the
//! regions named) and free conversation, overall and per slice.
//!
//! `item` turns dataset records into what is asked and what is expected;
//! `predict` asks the engine. The retrain gate scores with the same code.

pub mod item;
pub mod predict;

pub use item::EvalItem;
pub use predict::predict;
