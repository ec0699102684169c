//! Paired bootstrap confidence intervals for the difference between two
//! models scored on the same items (`dfa eval --compare`): resample the
//! items with replacement, recompute both models' metric on each resample,
//! and take the percentiles of the difference. Pairing by item removes the
//! items' own difficulty from the spread, so the interval is about the models.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// B − A on the full set, and the central `level` interval of B − A over
/// the resamples that had the metric defined.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub difference: f64,
    pub low: f64,
    pub high: f64,
    pub level: f64,
    pub resamples: usize,
}

/// `difference(indices)` is B − A on the items at `indices` (repeats
/// allowed), None where undefined (e.g. AUC of a one-class resample).
/// Deterministic for a seed.
pub fn paired_interval(
    n: usize,
    resamples: usize,
    level: f64,
    seed: u64,
    difference: impl Fn(&[usize]) -> Option<f64>,
) -> Option<Interval> {
    let all: Vec<usize> = (0..n).collect();
    let full = difference(&all)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut diffs = Vec::with_capacity(resamples);
    let mut sample = vec![0usize; n];
    for _ in 0..resamples {
        for s in sample.iter_mut() {
            *s = rng.gen_range(0..n);
        }
        if let Some(d) = difference(&sample) {
            diffs.push(d);
        }
    }
    if diffs.is_empty() {
        return None;
    }
    diffs.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    Some(Interval {
        difference: full,
        low: percentile(&diffs, tail),
        high: percentile(&diffs, 1.0 - tail),
        level,
        resamples: diffs.len(),
    })
}

/// Linear interpolation between order statistics (numpy's default).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let at = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accuracy difference of two answer lists against truth.
    fn accuracy_diff<'a>(a: &'a [bool], b: &'a [bool]) -> impl Fn(&[usize]) -> Option<f64> + 'a {
        move |idx: &[usize]| {
            let n = idx.len() as f64;
            let acc = |v: &[bool]| idx.iter().filter(|&&i| v[i]).count() as f64 / n;
            Some(acc(b) - acc(a))
        }
    }

    #[test]
    fn identical_models_have_a_zero_width_interval() {
        let right: Vec<bool> = (0..50).map(|i| i % 3 != 0).collect();
        let ci = paired_interval(50, 500, 0.95, 1, accuracy_diff(&right, &right)).unwrap();
        assert_eq!((ci.difference, ci.low, ci.high), (0.0, 0.0, 0.0));
    }

    #[test]
    fn a_clearly_better_model_has_an_interval_above_zero_around_its_gain() {
        // A is right on 60 of 100 items, B on those and 20 more: +0.20.
        let a: Vec<bool> = (0..100).map(|i| i < 60).collect();
        let b: Vec<bool> = (0..100).map(|i| i < 80).collect();
        let ci = paired_interval(100, 2000, 0.95, 7, accuracy_diff(&a, &b)).unwrap();
        assert!((ci.difference - 0.20).abs() < 1e-12);
        assert!(ci.low > 0.0 && ci.low < 0.20 && ci.high > 0.20, "{ci:?}");
        // Binomial sd of the gain is sqrt(0.2·0.8/100) = 0.04: ±1.96 sd.
        assert!(
            (ci.high - ci.low - 2.0 * 1.96 * 0.04).abs() < 0.03,
            "{ci:?}"
        );
        let again = paired_interval(100, 2000, 0.95, 7, accuracy_diff(&a, &b)).unwrap();
        assert_eq!(ci, again, "deterministic for a seed");
        let other = paired_interval(100, 2000, 0.95, 8, accuracy_diff(&a, &b)).unwrap();
        assert_ne!(ci.low, other.low);
    }

    #[test]
    fn undefined_resamples_are_left_out_and_all_undefined_is_none() {
        assert!(paired_interval(10, 100, 0.95, 1, |_| None).is_none());
        let ci = paired_interval(10, 100, 0.95, 1, |idx| {
            (idx.contains(&0) || idx.len() == 10 && idx[9] == 9).then_some(1.0)
        })
        .unwrap();
        assert!(ci.resamples < 100, "{ci:?}");
    }

    #[test]
    fn percentiles_interpolate() {
        let v = [0.0, 1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 2.0);
        assert_eq!(percentile(&v, 0.125), 0.5);
        assert_eq!(percentile(&v, 1.0), 4.0);
    }
}
