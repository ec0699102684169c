//! How verdicts agree with reviewers' corrections, "fake" being the
//! positive class and a verdict's standing (latest) correction the truth.

use serde::Serialize;

/// The confusion counts of the corrected verdicts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Agreement {
    /// Said fake, corrected to fake.
    pub true_fake: u64,
    /// Said fake, corrected to real.
    pub false_fake: u64,
    /// Said real, corrected to fake.
    pub missed_fake: u64,
    /// Said real, corrected to real.
    pub true_real: u64,
}

/// `num / den`, or None when nothing was counted.
fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

impl Agreement {
    pub fn corrected(&self) -> u64 {
        self.true_fake + self.false_fake + self.missed_fake + self.true_real
    }

    /// Share of corrected verdicts whose label stood.
    pub fn accuracy(&self) -> Option<f64> {
        ratio(self.true_fake + self.true_real, self.corrected())
    }

    /// Share of "fake" verdicts that were fake.
    pub fn precision(&self) -> Option<f64> {
        ratio(self.true_fake, self.true_fake + self.false_fake)
    }

    /// Share of fakes that were called fake.
    pub fn recall(&self) -> Option<f64> {
        ratio(self.true_fake, self.true_fake + self.missed_fake)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_follow_the_confusion_counts() {
        let a = Agreement {
            true_fake: 3,
            false_fake: 1,
            missed_fake: 2,
            true_real: 4,
        };
        assert_eq!(a.corrected(), 10);
        assert_eq!(a.accuracy(), Some(0.7));
        assert_eq!(a.precision(), Some(0.75));
        assert_eq!(a.recall(), Some(0.6));
    }

    #[test]
    fn nothing_counted_is_no_figure_not_zero() {
        let none = Agreement::default();
        assert_eq!(none.accuracy(), None);
        let only_real = Agreement {
            true_real: 2,
            ..Agreement::default()
        };
        assert_eq!(only_real.accuracy(), Some(1.0));
        assert_eq!(only_real.precision(), None);
        assert_eq!(only_real.recall(), None);
    }
}
