//! The report's plots as standalone SVG: the ROC curve, the reliability
//! diagram and the type confusion matrix. Plain strings: no plotting crate
//! for three simple charts, and the files open in any browser.

use std::fmt::Write;

use crate::domain::ForgeryType;
use crate::metrics::classification::TypeConfusion;
use crate::metrics::detection::Bin;

const SIZE: f64 = 320.0;
const PAD: f64 = 48.0;

fn frame(title: &str, x_label: &str, y_label: &str, ticks: bool) -> String {
    let full = SIZE + 2.0 * PAD;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{full}" height="{full}" viewBox="0 0 {full} {full}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        s,
        r##"<rect x="{PAD}" y="{PAD}" width="{SIZE}" height="{SIZE}" fill="none" stroke="#888"/><text x="{}" y="24" text-anchor="middle" font-size="14">{}</text><text x="{}" y="{}" text-anchor="middle">{}</text><text x="14" y="{}" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>"##,
        full / 2.0,
        escape(title),
        full / 2.0,
        full - 10.0,
        escape(x_label),
        full / 2.0,
        full / 2.0,
        escape(y_label)
    );
    for t in [0.0, 0.5, 1.0].into_iter().filter(|_| ticks) {
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{t}</text><text x="{}" y="{}" text-anchor="end">{t}</text>"#,
            x(t),
            PAD + SIZE + 16.0,
            PAD - 6.0,
            y(t) + 4.0
        );
    }
    s
}

fn x(v: f64) -> f64 {
    PAD + v.clamp(0.0, 1.0) * SIZE
}

fn y(v: f64) -> f64 {
    PAD + (1.0 - v.clamp(0.0, 1.0)) * SIZE
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn diagonal(s: &mut String) {
    let _ = write!(
        s,
        r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#bbb" stroke-dasharray="4 4"/>"##,
        x(0.0),
        y(0.0),
        x(1.0),
        y(1.0)
    );
}

/// The ROC curve through `points` (FPR, TPR), with its AUC in the title.
pub fn roc(points: &[(f64, f64)], auc: Option<f64>) -> String {
    let title = match auc {
        Some(a) => format!("ROC curve (AUC {a:.3})"),
        None => "ROC curve (needs fakes and reals)".into(),
    };
    let mut s = frame(&title, "false-positive rate", "true-positive rate", true);
    diagonal(&mut s);
    let path: Vec<String> = points
        .iter()
        .map(|(f, t)| format!("{:.2},{:.2}", x(*f), y(*t)))
        .collect();
    if !path.is_empty() {
        let _ = write!(
            s,
            r##"<polyline class="roc" points="{}" fill="none" stroke="#c0392b" stroke-width="2"/>"##,
            path.join(" ")
        );
    }
    s.push_str("</svg>\n");
    s
}

/// The reliability diagram: per bin, the share of fakes (bar) against the
/// mean p_fake (the diagonal is perfect calibration); empty bins are blank.
pub fn reliability(bins: &[Bin], ece: Option<f64>) -> String {
    let title = match ece {
        Some(e) => format!("Reliability ({} bins, ECE {e:.3})", bins.len()),
        None => "Reliability".into(),
    };
    let mut s = frame(&title, "mean p_fake in bin", "share of fakes", true);
    for b in bins.iter().filter(|b| b.count > 0) {
        let _ = write!(
            s,
            r##"<rect class="bin" x="{:.2}" y="{:.2}" width="{:.2}" height="{:.2}" fill="#2e86c1" fill-opacity="0.7"><title>{:.2}–{:.2}: {} items, {:.0}% fake, mean p_fake {:.2}</title></rect>"##,
            x(b.from) + 1.0,
            y(b.frequency),
            (x(b.to) - x(b.from) - 2.0).max(1.0),
            y(0.0) - y(b.frequency),
            b.from,
            b.to,
            b.count,
            100.0 * b.frequency,
            b.confidence
        );
    }
    diagonal(&mut s);
    s.push_str("</svg>\n");
    s
}

/// The 4×4 type confusion matrix, rows the truth, shaded by row share.
pub fn confusion(c: &TypeConfusion) -> String {
    let mut s = frame("Forgery type confusion", "predicted", "truth", false);
    let cell = SIZE / 4.0;
    for (i, row) in c.matrix.iter().enumerate() {
        let total: u64 = row.iter().sum();
        for (j, n) in row.iter().enumerate() {
            let share = if total > 0 {
                *n as f64 / total as f64
            } else {
                0.0
            };
            let (cx, cy) = (PAD + j as f64 * cell, PAD + i as f64 * cell);
            let _ = write!(
                s,
                r##"<rect class="cell" x="{cx:.2}" y="{cy:.2}" width="{cell:.2}" height="{cell:.2}" fill="#117a65" fill-opacity="{share:.3}" stroke="#fff"/><text x="{:.2}" y="{:.2}" text-anchor="middle">{n}</text>"##,
                cx + cell / 2.0,
                cy + cell / 2.0 + 4.0
            );
        }
    }
    // Initials under the columns and left of the rows: fs, fr, fe, efs.
    for (i, t) in ForgeryType::ALL.iter().enumerate() {
        let short: String = t.as_str().split('_').map(|w| &w[..1]).collect();
        let at = PAD + (i as f64 + 0.5) * cell;
        let _ = write!(
            s,
            r#"<text x="{at:.2}" y="{:.2}" text-anchor="middle" font-size="11">{short}</text><text x="{:.2}" y="{:.2}" text-anchor="end" font-size="11">{short}</text>"#,
            PAD + SIZE + 16.0,
            PAD - 6.0,
            at + 4.0,
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_draw_what_they_are_given() {
        let svg = roc(&[(0.0, 0.0), (0.0, 0.5), (1.0, 1.0)], Some(0.75));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("AUC 0.750"));
        assert_eq!(svg.matches("class=\"roc\"").count(), 1);
        let bins = crate::metrics::detection::reliability(
            &[
                crate::metrics::detection::Scored {
                    p_fake: 0.1,
                    fake: false,
                },
                crate::metrics::detection::Scored {
                    p_fake: 0.9,
                    fake: true,
                },
            ],
            15,
        );
        assert_eq!(
            reliability(&bins, Some(0.1))
                .matches("class=\"bin\"")
                .count(),
            2
        );
        let c = TypeConfusion::of([(ForgeryType::FaceSwap, ForgeryType::FaceEditing)]);
        let svg = confusion(&c);
        assert_eq!(svg.matches("class=\"cell\"").count(), 16);
        assert!(svg.contains("fill-opacity=\"1.000\""));
        assert!(!escape("<a&b>").contains('<'));
    }
}
