//! Detection (DF-D): how well `p_fake` separates fakes from reals, at the
//! serving threshold and over all thresholds, and how well it is calibrated.

use serde::Serialize;

/// One scored item: the model's p_fake and whether it is fake.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub p_fake: f64,
    pub fake: bool,
}

/// Counts at one threshold ("fake" is the positive class).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Confusion {
    pub true_fake: u64,
    pub false_fake: u64,
    pub missed_fake: u64,
    pub true_real: u64,
}

impl Confusion {
    /// `fake` at or above `threshold`, as verdicts are labelled.
    pub fn at(items: &[Scored], threshold: f64) -> Confusion {
        let mut c = Confusion::default();
        for s in items {
            match (s.p_fake >= threshold, s.fake) {
                (true, true) => c.true_fake += 1,
                (true, false) => c.false_fake += 1,
                (false, true) => c.missed_fake += 1,
                (false, false) => c.true_real += 1,
            }
        }
        c
    }

    pub fn accuracy(&self) -> Option<f64> {
        let n = self.true_fake + self.false_fake + self.missed_fake + self.true_real;
        ratio(self.true_fake + self.true_real, n)
    }

    pub fn precision(&self) -> Option<f64> {
        ratio(self.true_fake, self.true_fake + self.false_fake)
    }

    pub fn recall(&self) -> Option<f64> {
        ratio(self.true_fake, self.true_fake + self.missed_fake)
    }

    /// F1 for "fake"; None when neither precision nor recall is defined.
    pub fn f1(&self) -> Option<f64> {
        ratio(
            2 * self.true_fake,
            2 * self.true_fake + self.false_fake + self.missed_fake,
        )
    }

    pub fn false_positive_rate(&self) -> Option<f64> {
        ratio(self.false_fake, self.false_fake + self.true_real)
    }
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// Area under the ROC curve: the probability that a random fake scores
/// above a random real, ties counting one half (the Mann–Whitney U
/// statistic). None without both classes.
pub fn roc_auc(items: &[Scored]) -> Option<f64> {
    let mut sorted: Vec<Scored> = items.to_vec();
    sorted.sort_by(|a, b| a.p_fake.total_cmp(&b.p_fake));
    let fakes = sorted.iter().filter(|s| s.fake).count() as f64;
    let reals = sorted.len() as f64 - fakes;
    if fakes == 0.0 || reals == 0.0 {
        return None;
    }
    // Average ranks (1-based) over runs of equal scores.
    let mut rank_sum_fake = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].p_fake == sorted[i].p_fake {
            j += 1;
        }
        let mean_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum_fake += mean_rank * sorted[i..j].iter().filter(|s| s.fake).count() as f64;
        i = j;
    }
    Some((rank_sum_fake - fakes * (fakes + 1.0) / 2.0) / (fakes * reals))
}

/// The ROC curve's points (false-positive rate, true-positive rate), one
/// per distinct score from the highest down, starting at (0, 0).
pub fn roc_curve(items: &[Scored]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<Scored> = items.to_vec();
    sorted.sort_by(|a, b| b.p_fake.total_cmp(&a.p_fake));
    let fakes = sorted.iter().filter(|s| s.fake).count().max(1) as f64;
    let reals = sorted.iter().filter(|s| !s.fake).count().max(1) as f64;
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut points = vec![(0.0, 0.0)];
    let mut i = 0;
    while i < sorted.len() {
        let score = sorted[i].p_fake;
        while i < sorted.len() && sorted[i].p_fake == score {
            if sorted[i].fake {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        points.push((fp / reals, tp / fakes));
    }
    points
}

/// Mean squared difference between p_fake and the truth (0 or 1).
pub fn brier(items: &[Scored]) -> Option<f64> {
    if items.is_empty() {
        return None;
    }
    let sum: f64 = items
        .iter()
        .map(|s| (s.p_fake - f64::from(u8::from(s.fake))).powi(2))
        .sum();
    Some(sum / items.len() as f64)
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bin {
    pub from: f64,
    pub to: f64,
    pub count: u64,
    /// Mean p_fake of the bin's items.
    pub confidence: f64,
    /// Share of fakes among them.
    pub frequency: f64,
}

/// `bins` equal-width bins of p_fake over [0, 1] (the last one closed);
/// empty bins are kept with count 0.
pub fn reliability(items: &[Scored], bins: usize) -> Vec<Bin> {
    let bins = bins.max(1);
    let mut sums = vec![(0u64, 0.0f64, 0u64); bins];
    for s in items {
        let p = s.p_fake.clamp(0.0, 1.0);
        let i = ((p * bins as f64) as usize).min(bins - 1);
        sums[i].0 += 1;
        sums[i].1 += p;
        sums[i].2 += u64::from(s.fake);
    }
    sums.into_iter()
        .enumerate()
        .map(|(i, (count, p, fakes))| Bin {
            from: i as f64 / bins as f64,
            to: (i + 1) as f64 / bins as f64,
            count,
            confidence: if count > 0 { p / count as f64 } else { 0.0 },
            frequency: if count > 0 {
                fakes as f64 / count as f64
            } else {
                0.0
            },
        })
        .collect()
}

/// Expected calibration error over `bins` equal-width bins: the
/// count-weighted mean gap between confidence and frequency (DFA-Bench
/// reports 15 bins).
pub fn ece(items: &[Scored], bins: usize) -> Option<f64> {
    if items.is_empty() {
        return None;
    }
    let n = items.len() as f64;
    Some(
        reliability(items, bins)
            .iter()
            .map(|b| b.count as f64 / n * (b.confidence - b.frequency).abs())
            .sum(),
    )
}

/// The lowest threshold whose false-positive rate is at most `target`
/// (the most recall within the budget), with the recall it gives. Scores
/// are the candidates: a threshold between two scores labels alike.
pub fn threshold_for_fpr(items: &[Scored], target: f64) -> Option<(f64, f64)> {
    let mut candidates: Vec<f64> = items.iter().map(|s| s.p_fake).collect();
    candidates.sort_by(f64::total_cmp);
    candidates.dedup();
    // Above every score nothing is fake: FPR 0, always within the budget.
    let above = candidates.last().map(|m| m + f64::EPSILON.max(m * 1e-9))?;
    candidates.push(above);
    candidates.into_iter().find_map(|t| {
        let c = Confusion::at(items, t);
        let fpr = c.false_positive_rate().unwrap_or(0.0);
        (fpr <= target).then(|| (t, c.recall().unwrap_or(0.0)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(p_fake: f64, fake: bool) -> Scored {
        Scored { p_fake, fake }
    }

    #[test]
    fn a_perfect_separation_scores_one_and_all_wrong_zero() {
        let perfect = [s(0.9, true), s(0.8, true), s(0.2, false), s(0.1, false)];
        assert_eq!(roc_auc(&perfect), Some(1.0));
        let c = Confusion::at(&perfect, 0.5);
        assert_eq!(
            (c.accuracy(), c.precision(), c.recall(), c.f1()),
            (Some(1.0), Some(1.0), Some(1.0), Some(1.0))
        );
        let wrong = [s(0.1, true), s(0.2, true), s(0.8, false), s(0.9, false)];
        assert_eq!(roc_auc(&wrong), Some(0.0));
        assert_eq!(Confusion::at(&wrong, 0.5).accuracy(), Some(0.0));
        assert_eq!(Confusion::at(&wrong, 0.5).f1(), Some(0.0));
    }

    #[test]
    fn ties_count_one_half_in_the_auc() {
        assert_eq!(roc_auc(&[s(0.5, true), s(0.5, false)]), Some(0.5));
        // Fakes 0.9, 0.5; reals 0.5, 0.1: pairs 1 + 1 + 0.5 + 1 of 4.
        let items = [s(0.9, true), s(0.5, true), s(0.5, false), s(0.1, false)];
        assert_eq!(roc_auc(&items), Some(0.875));
        assert_eq!(roc_auc(&[s(0.9, true)]), None, "one class only");
    }

    #[test]
    fn the_roc_curve_runs_from_origin_to_one_one() {
        let items = [s(0.9, true), s(0.5, true), s(0.5, false), s(0.1, false)];
        assert_eq!(
            roc_curve(&items),
            vec![(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]
        );
    }

    #[test]
    fn calibration_of_known_cases() {
        let sure = [s(1.0, true), s(0.0, false)];
        assert_eq!(brier(&sure), Some(0.0));
        assert_eq!(ece(&sure, 15), Some(0.0));
        // Always 0.8, half fakes: Brier = (0.04 + 0.64) / 2, ECE = |0.8 - 0.5|.
        let over = [s(0.8, true), s(0.8, false)];
        assert!((brier(&over).unwrap() - 0.34).abs() < 1e-12);
        assert!((ece(&over, 15).unwrap() - 0.3).abs() < 1e-12);
        let bins = reliability(&over, 15);
        assert_eq!(bins.len(), 15);
        assert_eq!(bins.iter().map(|b| b.count).sum::<u64>(), 2);
        assert_eq!(
            reliability(&[s(1.0, true)], 15)[14].count,
            1,
            "1.0 in the last bin"
        );
    }

    #[test]
    fn the_threshold_for_a_false_positive_budget() {
        // Reals at 0.1..0.4 and 0.95; fakes at 0.6..0.9.
        let mut items: Vec<Scored> = [0.1, 0.2, 0.3, 0.4, 0.95]
            .iter()
            .map(|p| s(*p, false))
            .collect();
        items.extend([0.6, 0.7, 0.8, 0.9].iter().map(|p| s(*p, true)));
        // FPR ≤ 20 %: one real may pass, so 0.6 (recall 1) is allowed.
        assert_eq!(threshold_for_fpr(&items, 0.2), Some((0.6, 1.0)));
        // FPR 0: only above the 0.95 real, where no fake is caught.
        let (t, recall) = threshold_for_fpr(&items, 0.0).unwrap();
        assert!(t > 0.95);
        assert_eq!(recall, 0.0);
    }
}
