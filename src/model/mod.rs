//! Model files: resolving the configured GGUF/mmproj (or generating the tiny
//! test model), the atomic GGUF writer, and the generated models themselves.

pub mod files;
pub mod gguf_write;
pub mod tiny;
