//! The worker: real broker (nisshi), real Postgres, real llama.cpp on the
//! tiny model, the real `dfa worker` process. Needs `scripts/dev-up`
//! (scripts/test runs it). One test binary, one module per concern, so the
//! tiny model and the `dfa` binary are built once for all of them.

#[path = "../common/mod.rs"]
mod common;

mod big_images;
mod faces;
mod fetch_guard;
mod idempotency;
mod image_retention;
mod inproc;
mod lifecycle;
mod oversize;
mod pipeline;
mod signed_feedback;
