//! The numbers page's figures from `/api/stats`'s answer: the headline
//! numbers and the four charts, each with its title, legend, a sentence for
//! screen readers, and what to say instead when there is nothing to draw.
//!
//! - `volume`: how many verdicts, per day and label, per forgery type
//! - `scores`: how sure the model was (p_fake) and how right (agreement)

mod scores;
mod volume;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::charts::Chart;
use crate::serve::stats::Stats;

pub use scores::{agreement, histogram};
pub use volume::{daily, types};

/// What an analyst wants at a glance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Headlines {
    pub verdicts: u64,
    /// Verdicts on images without a face: nothing was screened.
    pub no_face: u64,
    /// Verdicts with a label (all but `no_face`).
    pub screened: u64,
    pub fake: u64,
    /// fake / screened; none without screened verdicts.
    pub fake_share: Option<f64>,
    /// Verdicts some reviewer corrected.
    pub corrected: u64,
    /// Corrected verdicts whose label the standing correction kept.
    pub agreed: u64,
    /// agreed / corrected; none without corrections.
    pub agreement: Option<f64>,
}

pub fn headlines(s: &Stats) -> Headlines {
    let fake = s.buckets.iter().map(|b| count(&b.labels, "fake")).sum();
    let corrected = s.adapters.iter().map(|a| a.corrected).sum();
    let agreed = s.adapters.iter().map(|a| a.true_fake + a.true_real).sum();
    let screened = s.verdicts.saturating_sub(s.no_face);
    Headlines {
        verdicts: s.verdicts,
        no_face: s.no_face,
        screened,
        fake,
        fake_share: ratio(fake, screened),
        corrected,
        agreed,
        agreement: ratio(agreed, corrected),
    }
}

pub(super) fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

pub(super) fn count(map: &std::collections::BTreeMap<String, u64>, key: &str) -> u64 {
    map.get(key).copied().unwrap_or(0)
}

/// One entry of a chart's legend: a swatch of `class` and its meaning.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Key {
    pub class: &'static str,
    pub text: String,
}

pub(super) fn key(class: &'static str, text: impl Into<String>) -> Key {
    Key {
        class,
        text: text.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    /// The `<svg>`'s id (`chart-…`).
    pub id: &'static str,
    pub title: String,
    /// The chart in one sentence (`aria-label`).
    pub aria: String,
    pub legend: Vec<Key>,
    /// Said instead of the chart when there is nothing to draw.
    pub empty: Option<&'static str>,
    /// Spans the page's width.
    pub wide: bool,
    pub chart: Chart,
}

pub(super) const NO_VERDICTS: &str = "No verdicts in this window.";

/// How a bucket's start reads under its column, and in a tooltip.
pub(super) fn bucket_names(bucket: &str, start: DateTime<Utc>) -> (String, String) {
    match bucket {
        "hour" => (
            start.format("%H:00").to_string(),
            start.format("%a %-d %b %H:00").to_string(),
        ),
        "week" => (
            start.format("%-d %b").to_string(),
            start.format("week of %a %-d %b").to_string(),
        ),
        _ => (
            start.format("%-d %b").to_string(),
            start.format("%a %-d %b").to_string(),
        ),
    }
}

#[cfg(test)]
mod tests;
