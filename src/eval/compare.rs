//! `dfa eval --compare A B`: two models on the same items, side by side,
//! with B − A and paired bootstrap intervals for accuracy and ROC AUC.

use std::collections::HashMap;
use std::fmt::Write;

use serde::Serialize;

use super::output::Evaluation;
use crate::domain::Label;
use crate::metrics::bootstrap::{paired_interval, Interval};
use crate::metrics::detection::{roc_auc, Confusion, Scored};
use crate::metrics::report::Report;

pub const RESAMPLES: usize = 2000;
pub const SEED: u64 = 13;

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    /// Items both evaluated, with a label and a p_fake (the intervals' items).
    pub paired_items: usize,
    pub rows: Vec<Row>,
    pub accuracy_interval: Option<Interval>,
    pub auc_interval: Option<Interval>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub metric: &'static str,
    pub a: Option<f64>,
    pub b: Option<f64>,
    pub difference: Option<f64>,
}

fn headline(r: &Report) -> Vec<(&'static str, Option<f64>)> {
    let d = &r.detection;
    let art = r.artifacts.as_ref();
    vec![
        ("accuracy", d.accuracy),
        ("precision", d.precision),
        ("recall", d.recall),
        ("f1", d.f1),
        ("roc_auc", d.roc_auc),
        ("ece_15", d.ece_15),
        ("brier", d.brier),
        ("type_accuracy", r.classification.accuracy),
        ("type_macro_f1", r.classification.macro_f1),
        ("bleu_4", art.map(|t| t.bleu[3])),
        ("rouge_l", art.map(|t| t.rouge_l)),
        ("region_f1", art.and_then(|t| t.region_f1)),
    ]
}

/// Both evaluations' numbers and the paired intervals (items matched by id).
pub fn compare(a_name: &str, a: &Evaluation, b_name: &str, b: &Evaluation) -> Comparison {
    let rows = headline(&a.report)
        .into_iter()
        .zip(headline(&b.report))
        .map(|((metric, x), (_, y))| Row {
            metric,
            a: x,
            b: y,
            difference: x.zip(y).map(|(x, y)| y - x),
        })
        .collect();
    let by_id: HashMap<&str, _> = b.lines.iter().map(|l| (l.id.as_str(), l)).collect();
    // (fake, p_fake by A, p_fake by B) for items both scored.
    let pairs: Vec<(bool, f64, f64)> = a
        .lines
        .iter()
        .filter_map(|la| {
            let lb = by_id.get(la.id.as_str())?;
            Some((la.truth_label? == Label::Fake, la.p_fake?, lb.p_fake?))
        })
        .collect();
    let (ta, tb) = (a.threshold, b.threshold);
    let side = |idx: &[usize], second: bool| -> Vec<Scored> {
        idx.iter()
            .map(|&i| {
                let (fake, pa, pb) = pairs[i];
                Scored {
                    p_fake: if second { pb } else { pa },
                    fake,
                }
            })
            .collect()
    };
    let n = pairs.len();
    let accuracy_interval = (n > 0).then_some(()).and_then(|_| {
        paired_interval(n, RESAMPLES, 0.95, SEED, |idx| {
            let acc_b = Confusion::at(&side(idx, true), tb).accuracy()?;
            let acc_a = Confusion::at(&side(idx, false), ta).accuracy()?;
            Some(acc_b - acc_a)
        })
    });
    let auc_interval = (n > 0).then_some(()).and_then(|_| {
        paired_interval(n, RESAMPLES, 0.95, SEED, |idx| {
            Some(roc_auc(&side(idx, true))? - roc_auc(&side(idx, false))?)
        })
    });
    Comparison {
        a: a_name.to_string(),
        b: b_name.to_string(),
        paired_items: n,
        rows,
        accuracy_interval,
        auc_interval,
    }
}

fn cell(x: Option<f64>) -> String {
    x.map_or("—".into(), |v| format!("{v:.4}"))
}

impl Comparison {
    /// A Markdown table (also what the terminal shows).
    pub fn table(&self) -> String {
        let mut s = format!(
            "| metric | A: {} | B: {} | B − A |\n|---|---|---|---|\n",
            self.a, self.b
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                r.metric,
                cell(r.a),
                cell(r.b),
                r.difference.map_or("—".into(), |d| format!("{d:+.4}"))
            );
        }
        let _ = writeln!(
            s,
            "\nPaired bootstrap over {} items ({RESAMPLES} resamples, seed {SEED}):",
            self.paired_items
        );
        for (name, ci) in [
            ("accuracy", &self.accuracy_interval),
            ("ROC AUC", &self.auc_interval),
        ] {
            let _ = match ci {
                Some(ci) => writeln!(
                    s,
                    "- {name}: B − A = {:+.4}, {:.0}% CI [{:+.4}, {:+.4}]{}",
                    ci.difference,
                    100.0 * ci.level,
                    ci.low,
                    ci.high,
                    if ci.low > 0.0 || ci.high < 0.0 {
                        " (excludes 0)"
                    } else {
                        " (includes 0: no clear difference)"
                    }
                ),
                None => writeln!(s, "- {name}: undefined (needs labelled fakes and reals)"),
            };
        }
        s
    }
}
