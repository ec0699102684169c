//! The review console at /console, in a real headless Chromium (WebDriver),
//! against a real `dfa serve` (tiny model, Postgres, the broker). Screenshots
//! of every page land under `$CARGO_TARGET_TMPDIR/console-screenshots/`.
//! Needs `scripts/dev-up` and Chromium with chromedriver (scripts/test
//! installs them).

#[path = "../common/mod.rs"]
mod common;
#[path = "../serve/harness.rs"]
mod harness;

mod browser;
mod http;
mod numbers;
mod queue;
mod sessions;
mod verdict;
