//! dfa: interactive deepfake analysis with DFA-GPT-style LLaVA models served
//! through llama.cpp. See README.md for the commands, docs/architecture.md for
//! how the modules fit together, and docs/ for the contracts.

// The centre: plain data and rules, and the typed settings tree.
pub mod domain;
pub mod settings;

// Pure-ish stages in front of the model.
pub mod faces;
pub mod intake;
pub mod model;

// Integrations at the edges.
pub mod engine;
pub mod eval;
pub mod images;
pub mod learning;
pub mod metrics;
pub mod registry;
pub mod serve;
pub mod store;
pub mod trainer;
pub mod worker;

// Wiring and shared plumbing.
pub mod atomic;
pub mod cli;
pub mod telemetry;
