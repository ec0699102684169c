//! DFA-Bench's numbers (issue 13), as plain functions over predictions and
//! references: detection (accuracy, precision/recall/F1 for "fake", ROC AUC,
//! calibration), classification (accuracy, macro-F1, confusion) and the
//! regions an artifact description names. No I/O: `dfa eval` feeds them.

pub mod bootstrap;
pub mod classification;
pub mod detection;
pub mod regions;
pub mod report;
pub mod text;
