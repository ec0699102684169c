//! Text metrics for artifact descriptions and answers, as the papers people
//! cite compute them: corpus BLEU-1…4 as sacreBLEU 2.x does by default
//! (13a tokenisation, case kept, "exp" smoothing, one reference) and
//! ROUGE-L as Google's `rouge-score` does (lowercased alphanumeric tokens,
//! no stemming). Tests hold numbers computed once with those tools.

use std::collections::HashMap;

/// sacreBLEU's `13a` tokeniser (mteval-v13a): punctuation split off,
/// except periods and commas inside numbers, and dashes after a digit.
pub fn tokenize_13a(line: &str) -> Vec<String> {
    let line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">");
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len() * 2);
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        let digit = |x: Option<char>| x.is_some_and(|x| x.is_ascii_digit());
        let split = match c {
            '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/' => true,
            '.' | ',' => !digit(prev) || !digit(next),
            '-' => digit(prev),
            _ => false,
        };
        if split {
            out.push(' ');
            out.push(c);
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out.split_whitespace().map(str::to_string).collect()
}

fn ngrams(tokens: &[String], n: usize) -> HashMap<&[String], u64> {
    let mut counts = HashMap::new();
    if tokens.len() >= n {
        for w in tokens.windows(n) {
            *counts.entry(w).or_insert(0) += 1;
        }
    }
    counts
}

/// Corpus BLEU up to `max_order` (1…4), 0–100, of `hypotheses` against one
/// reference each.
pub fn corpus_bleu(hypotheses: &[&str], references: &[&str], max_order: usize) -> f64 {
    let max_order = max_order.clamp(1, 4);
    let mut correct = [0u64; 4];
    let mut total = [0u64; 4];
    let (mut sys_len, mut ref_len) = (0u64, 0u64);
    for (h, r) in hypotheses.iter().zip(references) {
        let (h, r) = (tokenize_13a(h), tokenize_13a(r));
        sys_len += h.len() as u64;
        ref_len += r.len() as u64;
        for n in 1..=max_order {
            let hn = ngrams(&h, n);
            let rn = ngrams(&r, n);
            total[n - 1] += h.len().saturating_sub(n - 1) as u64;
            correct[n - 1] += hn
                .iter()
                .map(|(g, c)| (*c).min(rn.get(g).copied().unwrap_or(0)))
                .sum::<u64>();
        }
    }
    let mut smooth = 1.0;
    let mut log_sum = 0.0;
    for n in 0..max_order {
        let p = if total[n] == 0 {
            0.0
        } else if correct[n] == 0 {
            smooth *= 2.0;
            100.0 / (smooth * total[n] as f64)
        } else {
            100.0 * correct[n] as f64 / total[n] as f64
        };
        if p == 0.0 {
            return 0.0;
        }
        log_sum += p.ln();
    }
    let bp = if sys_len == 0 {
        0.0
    } else if sys_len < ref_len {
        (1.0 - ref_len as f64 / sys_len as f64).exp()
    } else {
        1.0
    };
    bp * (log_sum / max_order as f64).exp()
}

/// rouge-score's tokens: lowercased, every run of other characters than
/// a–z and 0–9 a separator.
pub fn tokenize_rouge(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// ROUGE-L of one hypothesis against its reference: (precision, recall, F).
pub fn rouge_l(hypothesis: &str, reference: &str) -> (f64, f64, f64) {
    let (h, r) = (tokenize_rouge(hypothesis), tokenize_rouge(reference));
    if h.is_empty() || r.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut row = vec![0usize; r.len() + 1];
    for a in &h {
        let mut diagonal = 0;
        for (j, b) in r.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if a == b {
                diagonal + 1
            } else {
                above.max(row[j])
            };
            diagonal = above;
        }
    }
    let lcs = row[r.len()] as f64;
    let (p, rec) = (lcs / h.len() as f64, lcs / r.len() as f64);
    let f = if p + rec > 0.0 {
        2.0 * p * rec / (p + rec)
    } else {
        0.0
    };
    (p, rec, f)
}

/// CIDEr-D as the COCO caption evaluation (`pycocoevalcap`'s `Cider`,
/// n = 4, σ = 6) computes it, on tokens the caller made (`tokenize_rouge`):
/// tf-idf n-gram vectors with document frequencies from the references,
/// clipped cosine similarity per order, a Gaussian length penalty, the mean
/// over orders × 10. Returns the corpus mean and each item's score. As in
/// the reference code, "length" counts bigrams.
pub fn cider_d(hypotheses: &[Vec<String>], references: &[Vec<Vec<String>>]) -> (f64, Vec<f64>) {
    const N: usize = 4;
    const SIGMA: f64 = 6.0;
    type Counts<'a> = HashMap<&'a [String], f64>;
    fn count(tokens: &[String]) -> HashMap<&[String], f64> {
        let mut c = HashMap::new();
        for n in 1..=N {
            for w in tokens.windows(n) {
                *c.entry(w).or_insert(0.0) += 1.0;
            }
        }
        c
    }
    let items = hypotheses.len().min(references.len());
    if items == 0 {
        return (0.0, Vec::new());
    }
    let refs: Vec<Vec<Counts>> = references[..items]
        .iter()
        .map(|rs| rs.iter().map(|r| count(r)).collect())
        .collect();
    let mut df: HashMap<&[String], f64> = HashMap::new();
    for rs in &refs {
        let mut seen: Vec<&[String]> = rs.iter().flat_map(|c| c.keys().copied()).collect();
        seen.sort();
        seen.dedup();
        for g in seen {
            *df.entry(g).or_insert(0.0) += 1.0;
        }
    }
    let log_items = (items as f64).ln();
    type Vector<'a> = ([HashMap<&'a [String], f64>; N], [f64; N], f64);
    fn vector<'a>(c: &Counts<'a>, df: &HashMap<&[String], f64>, log_items: f64) -> Vector<'a> {
        let mut vec: [HashMap<&'a [String], f64>; N] = Default::default();
        let mut norm = [0.0f64; N];
        let mut length = 0.0;
        for (g, tf) in c {
            let n = g.len() - 1;
            let weight = tf * (log_items - df.get(g).copied().unwrap_or(0.0).max(1.0).ln());
            vec[n].insert(*g, weight);
            norm[n] += weight * weight;
            if n == 1 {
                length += tf;
            }
        }
        (vec, norm.map(f64::sqrt), length)
    }
    let scores: Vec<f64> = hypotheses[..items]
        .iter()
        .zip(&refs)
        .map(|(h, rs)| {
            let hc = count(h);
            let (vh, nh, lh) = vector(&hc, &df, log_items);
            let mut sum = [0.0f64; N];
            for r in rs {
                let (vr, nr, lr) = vector(r, &df, log_items);
                let penalty = (-(lh - lr).powi(2) / (2.0 * SIGMA * SIGMA)).exp();
                for n in 0..N {
                    let mut v: f64 = vh[n]
                        .iter()
                        .map(|(g, w)| {
                            let wr = vr[n].get(g).copied().unwrap_or(0.0);
                            w.min(wr) * wr
                        })
                        .sum();
                    if nh[n] != 0.0 && nr[n] != 0.0 {
                        v /= nh[n] * nr[n];
                    }
                    sum[n] += v * penalty;
                }
            }
            sum.iter().sum::<f64>() / N as f64 / rs.len().max(1) as f64 * 10.0
        })
        .collect();
    (scores.iter().sum::<f64>() / items as f64, scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Computed once with sacreBLEU 2.6.0 (`BLEU(max_ngram_order=n).corpus_score`)
    // and rouge-score 0.1.2 (`RougeScorer(["rougeL"], use_stemmer=False)`).
    const HYPS: [&str; 3] = [
        "The eyes are misaligned and the reflections differ.",
        "The skin on the forehead is too smooth, with no pores.",
        "The mouth is blurred and the teeth merge together.",
    ];
    const REFS: [&str; 3] = [
        "The eyes are misaligned; their reflections do not match.",
        "The forehead skin is unnaturally smooth and lacks pores.",
        "The teeth are blurred and merge into one another.",
    ];

    #[test]
    fn bleu_agrees_with_sacrebleu() {
        let expected = [
            59.374999999999986,
            31.99541993085454,
            19.895006815235032,
            13.602731012757488,
        ];
        for (n, want) in (1..=4).zip(expected) {
            let got = corpus_bleu(&HYPS, &REFS, n);
            assert!(
                (got - want).abs() < 1e-9,
                "BLEU-{n}: {got} vs sacreBLEU {want}"
            );
        }
    }

    #[test]
    fn bleu_smoothing_and_brevity_penalty_agree_with_sacrebleu() {
        // Shorter than the references (brevity penalty) with no 3- or
        // 4-gram in common ("exp" smoothing).
        let hyps = ["the cat sat on a mat today", "blurry teeth"];
        let refs = [
            "the cat is sitting on the mat",
            "the teeth are blurry and merged",
        ];
        let expected = [
            42.74535922866365,
            19.78725637294746,
            13.590970315266924,
            10.01504511093189,
        ];
        for (n, want) in (1..=4).zip(expected) {
            let got = corpus_bleu(&hyps, &refs, n);
            assert!(
                (got - want).abs() < 1e-9,
                "BLEU-{n}: {got} vs sacreBLEU {want}"
            );
        }
    }

    #[test]
    fn rouge_l_agrees_with_rouge_score() {
        let f = [0.5882352941176471, 0.5, 0.4444444444444444];
        for ((h, r), want) in HYPS.iter().zip(REFS).zip(f) {
            let (p, _, got) = rouge_l(h, r);
            assert!((got - want).abs() < 1e-12, "{h}: {got} vs {want}");
            assert!(p > 0.0);
        }
        assert_eq!(rouge_l("", "x"), (0.0, 0.0, 0.0));
    }

    #[test]
    fn cider_d_agrees_with_pycocoevalcap() {
        let hyps: Vec<Vec<String>> = HYPS.iter().map(|h| tokenize_rouge(h)).collect();
        let refs: Vec<Vec<Vec<String>>> = REFS.iter().map(|r| vec![tokenize_rouge(r)]).collect();
        let (mean, each) = cider_d(&hyps, &refs);
        // pycocoevalcap 1.2 `Cider().compute_score` on the same tokens.
        let want = [3.599790315815372, 1.7398635376577234, 1.8887977207772466];
        for (got, want) in each.iter().zip(want) {
            assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        }
        assert!((mean - 2.4094838580834472).abs() < 1e-9, "{mean}");
    }

    #[test]
    fn the_13a_tokeniser_splits_punctuation_but_not_numbers() {
        assert_eq!(
            tokenize_13a("smooth, with no pores."),
            ["smooth", ",", "with", "no", "pores", "."]
        );
        assert_eq!(tokenize_13a("3.5 and 1,000"), ["3.5", "and", "1,000"]);
        assert_eq!(tokenize_13a("it's (odd)"), ["it's", "(", "odd", ")"]);
    }
}
