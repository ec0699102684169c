//! `dfa serve`: the HTTP API in process on a real Postgres, a real broker and
//! real llama.cpp with the tiny model. One test binary, one module per
//! concern. Needs `scripts/dev-up` (scripts/test runs it).

#[path = "../common/mod.rs"]
mod common;

mod access;
mod basics;
mod corrections;
mod harness;
mod questions;
mod reads;
mod reads_detail;
mod reads_scale;
mod reads_stats;
mod turns;
