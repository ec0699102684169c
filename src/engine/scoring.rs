//! Scores from logits: plain functions, testable without a model.

/// `ln p(token)` under the softmax of `logits`, computed in f64.
pub fn log_prob(logits: &[f32], token: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    logits[token] as f64 - max - sum.ln()
}

/// P(yes) / (P(yes) + P(no)) for the first answer token: a two-way softmax,
/// which the full-vocabulary normaliser cancels out of.
pub fn yes_probability(logits: &[f32], yes: usize, no: usize) -> f32 {
    let d = logits[yes] as f64 - logits[no] as f64;
    (1.0 / (1.0 + (-d).exp())) as f32
}

/// Turns log-likelihoods of competing answers into probabilities that sum to 1.
pub fn normalise<const N: usize>(log_likelihoods: [f64; N]) -> [f32; N] {
    let max = log_likelihoods
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let exp = log_likelihoods.map(|l| (l - max).exp());
    let sum: f64 = exp.iter().sum();
    exp.map(|e| (e / sum) as f32)
}

/// Index of the largest logit (greedy decoding; the first on ties).
pub fn argmax(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_prob_matches_a_direct_softmax() {
        let logits = [1.0f32, 2.0, 3.0];
        let z: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
        for (i, &l) in logits.iter().enumerate() {
            let expected = ((l as f64).exp() / z).ln();
            assert!((log_prob(&logits, i) - expected).abs() < 1e-12);
        }
    }

    #[test]
    fn log_prob_is_stable_for_large_logits() {
        let p = log_prob(&[1000.0, 1000.0], 0);
        assert!((p - 0.5f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn yes_probability_is_a_two_way_softmax() {
        let logits = [0.0f32, 3.0, 1.0, -2.0];
        let expected = 3f64.exp() / (3f64.exp() + 1f64.exp());
        assert!((yes_probability(&logits, 1, 2) as f64 - expected).abs() < 1e-6);
        assert_eq!(yes_probability(&logits, 2, 2), 0.5);
    }

    #[test]
    fn normalise_sums_to_one_and_keeps_order() {
        let p = normalise([-1.0, -2.0, -0.5, -10.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[2] > p[0] && p[0] > p[1] && p[1] > p[3]);
    }

    #[test]
    fn argmax_picks_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 0.9, 0.9, 0.2]), 1);
    }
}
