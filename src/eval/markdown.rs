//! `report.md`: the report as tables a person reads.

use std::fmt::Write;

use crate::domain::ForgeryType;
use crate::metrics::report::{Report, TextReport};

fn num(x: Option<f64>) -> String {
    x.map_or("—".into(), |v| format!("{v:.3}"))
}

fn pct(x: Option<f64>) -> String {
    x.map_or("—".into(), |v| format!("{:.1}%", 100.0 * v))
}

/// The whole report; `title` names the dataset and model.
pub fn render(title: &str, r: &Report, skipped: usize, bad_lines: usize) -> String {
    let mut s = String::new();
    let d = &r.detection;
    let _ = writeln!(s, "# DFA-Bench: {title}\n");
    let _ = writeln!(
        s,
        "{} items evaluated; {skipped} skipped (unreadable image or refused request); {bad_lines} bad dataset lines.\n",
        r.items
    );
    let _ = writeln!(s, "## Detection (DF-D)\n");
    let _ = writeln!(s, "| metric | value |\n|---|---|");
    for (k, v) in [
        ("items with a label", d.items.to_string()),
        (
            &format!("accuracy at threshold {:.2}", d.threshold),
            pct(d.accuracy),
        ),
        ("precision (fake)", pct(d.precision)),
        ("recall (fake)", pct(d.recall)),
        ("F1 (fake)", num(d.f1)),
        ("ROC AUC", num(d.roc_auc)),
        ("ECE (15 bins)", num(d.ece_15)),
        ("Brier score", num(d.brier)),
        (
            &format!("threshold for FPR ≤ {:.1}%", 100.0 * d.target_fpr),
            num(d.threshold_at_target),
        ),
        ("recall at that threshold", pct(d.recall_at_target)),
    ] {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    let c = &d.confusion;
    let _ = writeln!(
        s,
        "\n| | called fake | called real |\n|---|---|---|\n| fake | {} | {} |\n| real | {} | {} |\n",
        c.true_fake, c.missed_fake, c.false_fake, c.true_real
    );
    let _ = writeln!(s, "## Classification (DF-C)\n");
    let cl = &r.classification;
    let _ = writeln!(
        s,
        "{} forged items with a known type: accuracy {}, macro-F1 {}.\n",
        cl.items,
        pct(cl.accuracy),
        num(cl.macro_f1)
    );
    let _ = write!(s, "| truth \\ predicted |");
    for t in ForgeryType::ALL {
        let _ = write!(s, " {} |", t.as_str());
    }
    let _ = writeln!(s, "\n|---|---|---|---|---|");
    for (i, t) in ForgeryType::ALL.iter().enumerate() {
        let _ = write!(s, "| {} |", t.as_str());
        for n in cl.confusion.matrix[i] {
            let _ = write!(s, " {n} |");
        }
        let _ = writeln!(s);
    }
    text_section(&mut s, "Artifact description (AD)", r.artifacts.as_ref());
    text_section(&mut s, "Free conversation (FC)", r.conversation.as_ref());
    if !r.slices.is_empty() {
        let _ = writeln!(s, "\n## Per slice\n");
        let _ = writeln!(
            s,
            "| slice | items | accuracy | AUC | ECE | type accuracy | macro-F1 | BLEU-4 | ROUGE-L | region F1 |\n|---|---|---|---|---|---|---|---|---|---|"
        );
        for (name, x) in &r.slices {
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                x.items,
                pct(x.detection.accuracy),
                num(x.detection.roc_auc),
                num(x.detection.ece_15),
                pct(x.classification.accuracy),
                num(x.classification.macro_f1),
                num(x.artifacts.as_ref().map(|a| a.bleu[3])),
                num(x.artifacts.as_ref().map(|a| a.rouge_l)),
                num(x.artifacts.as_ref().and_then(|a| a.region_f1)),
            );
        }
    }
    let _ = writeln!(
        s,
        "\nPlots: roc.svg, reliability.svg, confusion.svg. How to read them and choose `analysis.threshold`: docs/eval.md."
    );
    s
}

fn text_section(s: &mut String, title: &str, t: Option<&TextReport>) {
    let _ = writeln!(s, "\n## {title}\n");
    let Some(t) = t else {
        let _ = writeln!(s, "No item has a reference.");
        return;
    };
    let _ = writeln!(
        s,
        "| items | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | ROUGE-L | CIDEr-D | region P | region R | region F1 |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    let _ = writeln!(
        s,
        "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} | {:.3} | {} | {} | {} |",
        t.items,
        t.bleu[0],
        t.bleu[1],
        t.bleu[2],
        t.bleu[3],
        t.rouge_l,
        t.cider_d,
        num(t.region_precision),
        num(t.region_recall),
        num(t.region_f1)
    );
}
