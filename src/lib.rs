//! dfa: interactive deepfake analysis with DFA-GPT-style LLaVA models served
//! through llama.cpp. See README.md for the commands and docs/ for contracts.

pub mod analyze;
pub mod artifacts;
pub mod cli;
pub mod engine;
pub mod gguf_write;
pub mod image_intake;
pub mod image_store;
pub mod learning;
pub mod model_files;
pub mod prompts;
pub mod scoring;
pub mod settings;
pub mod store;
pub mod telemetry;
pub mod tinymodel;
pub mod trainer;
pub mod verdict;
pub mod worker;
