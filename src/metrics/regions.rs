//! The structural score of an artifact description: which facial regions
//! it names, against the reference's. Generic text metrics reward wording;
//! this rewards pointing at the right places.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::domain::Artifact;

/// DFA-Instruct's regions under one name each. A region title is matched
/// by the first canonical region whose key words it contains.
const REGIONS: [(&str, &[&str]); 8] = [
    ("forehead", &["forehead", "brow"]),
    ("eyes", &["eye", "eyelid", "pupil", "iris"]),
    ("nose", &["nose", "nostril"]),
    ("cheek and jawline", &["cheek", "jaw", "chin"]),
    ("mouth and lips", &["mouth", "lip", "teeth", "tooth"]),
    ("ears", &["ear"]),
    ("hair", &["hair"]),
    ("skin", &["skin", "complexion", "texture"]),
];

/// The canonical region a title names ("**Eyes and Eyebrows**" → eyes,
/// "Cheeks & jaw line" → cheek and jawline), or the lowercased title with
/// punctuation removed when it is none of DFA-Instruct's.
pub fn canonical(title: &str) -> String {
    let words: Vec<String> = title
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    // "ear" must not match "forehead" by substring: words are matched by
    // prefix ("eyes" starts with "eye"), never inside another word.
    for (name, keys) in REGIONS {
        if words.iter().any(|w| keys.iter().any(|k| w.starts_with(k))) {
            return name.to_string();
        }
    }
    words.join(" ")
}

pub fn regions_of(artifacts: &[Artifact]) -> BTreeSet<String> {
    artifacts
        .iter()
        .map(|a| canonical(&a.region))
        .filter(|r| !r.is_empty())
        .collect()
}

/// Precision, recall and F1 of the regions named, for one item or summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RegionCounts {
    pub matched: u64,
    pub generated: u64,
    pub reference: u64,
}

impl RegionCounts {
    pub fn of(generated: &[Artifact], reference: &[Artifact]) -> RegionCounts {
        let g = regions_of(generated);
        let r = regions_of(reference);
        RegionCounts {
            matched: g.intersection(&r).count() as u64,
            generated: g.len() as u64,
            reference: r.len() as u64,
        }
    }

    pub fn add(&mut self, other: RegionCounts) {
        self.matched += other.matched;
        self.generated += other.generated;
        self.reference += other.reference;
    }

    pub fn precision(&self) -> Option<f64> {
        (self.generated > 0).then(|| self.matched as f64 / self.generated as f64)
    }

    pub fn recall(&self) -> Option<f64> {
        (self.reference > 0).then(|| self.matched as f64 / self.reference as f64)
    }

    pub fn f1(&self) -> Option<f64> {
        let den = self.generated + self.reference;
        (den > 0).then(|| 2.0 * self.matched as f64 / den as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(regions: &[&str]) -> Vec<Artifact> {
        regions
            .iter()
            .map(|r| Artifact {
                region: r.to_string(),
                text: "…".into(),
            })
            .collect()
    }

    #[test]
    fn region_titles_are_normalised() {
        assert_eq!(canonical("**Eyes and Eyebrows**"), "eyes");
        assert_eq!(canonical("Cheeks & jaw line"), "cheek and jawline");
        assert_eq!(canonical("Mouth and Lips"), "mouth and lips");
        assert_eq!(canonical("Forehead"), "forehead");
        assert_eq!(canonical("Left ear"), "ears");
        assert_eq!(canonical("Background, lighting!"), "background lighting");
    }

    #[test]
    fn region_f1_of_hand_made_lists() {
        let reference = list(&["Forehead", "Eyes", "Mouth and Lips"]);
        let perfect = RegionCounts::of(&list(&["forehead", "Eye", "Lips"]), &reference);
        assert_eq!(
            (perfect.precision(), perfect.recall(), perfect.f1()),
            (Some(1.0), Some(1.0), Some(1.0))
        );
        // Two named, one right: P 1/2, R 1/3, F1 2·1/(2+3).
        let half = RegionCounts::of(&list(&["Eyes", "Nose"]), &reference);
        assert_eq!(
            (half.precision(), half.recall()),
            (Some(0.5), Some(1.0 / 3.0))
        );
        assert_eq!(half.f1(), Some(0.4));
        let none = RegionCounts::of(&[], &reference);
        assert_eq!((none.precision(), none.f1()), (None, Some(0.0)));
        let mut sum = perfect;
        sum.add(half);
        assert_eq!((sum.matched, sum.generated, sum.reference), (4, 5, 6));
    }
}
