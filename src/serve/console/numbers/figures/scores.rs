//! Scores: the p_fake histogram against the threshold, and how often each
//! adapter's label survived reviewers' corrections.

use super::super::charts::{columns, rows, Column, Frame, Line, Row, Segment, Text};
use super::{key, Figure, NO_VERDICTS};
use crate::serve::stats::{AdapterStats, Stats};

/// The p_fake histogram, bins coloured by the side of the threshold they
/// fall on, the threshold drawn across.
pub fn histogram(s: &Stats, threshold: f64) -> Figure {
    let cols: Vec<Column> = s
        .p_fake_histogram
        .iter()
        .map(|bin| {
            // Bin edges are multiples of 0.1 in f64; the threshold is an
            // f32 setting (0.7 widens to 0.69999998...): compare as f32.
            let class = if bin.from as f32 >= threshold as f32 {
                "bar-fake"
            } else if bin.to as f32 <= threshold as f32 {
                "bar-real"
            } else {
                "bar-mixed"
            };
            Column {
                label: String::new(),
                segments: vec![Segment {
                    value: bin.verdicts,
                    class,
                    title: format!(
                        "p_fake {:.1}–{:.1}: {} verdicts",
                        bin.from, bin.to, bin.verdicts
                    ),
                }],
            }
        })
        .collect();
    let frame = Frame {
        width: 560.0,
        height: 200.0,
        left: 40.0,
        right: 14.0,
        top: 22.0,
        bottom: 26.0,
    };
    let mixed = cols
        .iter()
        .any(|c| c.segments.iter().any(|s| s.class == "bar-mixed"));
    let mut chart = columns(frame, &cols, 4);
    let base = frame.height - frame.bottom;
    for i in 0..=5 {
        let p = f64::from(i) / 5.0;
        chart.texts.push(Text {
            x: frame.x_at(p),
            y: base + 15.0,
            text: format!("{p:.1}"),
            anchor: "middle",
            class: "tick",
        });
    }
    let x = frame.x_at(threshold);
    chart.lines.push(Line {
        x1: x,
        y1: frame.top - 6.0,
        x2: x,
        y2: base,
        class: "threshold",
    });
    chart.texts.push(Text {
        x: x + 4.0,
        y: frame.top - 8.0,
        text: format!("threshold {threshold:.2}"),
        anchor: "start",
        class: "marker",
    });
    Figure {
        id: "chart-histogram",
        title: "p_fake histogram".into(),
        aria: format!(
            "Verdicts by p_fake in bins of 0.1, the threshold at {threshold:.2}: {}.",
            s.p_fake_histogram
                .iter()
                .map(|b| b.verdicts.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        legend: [
            Some(key("bar-real", "below the threshold (real)")),
            mixed.then(|| key("bar-mixed", "across it")),
            Some(key("bar-fake", "at or above it (fake)")),
        ]
        .into_iter()
        .flatten()
        .collect(),
        empty: (s.verdicts == 0).then_some(NO_VERDICTS),
        wide: false,
        chart,
    }
}

fn adapter_name(a: &AdapterStats) -> String {
    a.adapter.clone().unwrap_or_else(|| "base model".into())
}

fn figure(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.2}"))
}

/// Per adapter (the base model first), the share of its corrected verdicts
/// whose label the reviewers kept.
pub fn agreement(s: &Stats) -> Figure {
    let bars: Vec<Row> = s
        .adapters
        .iter()
        .map(|a| {
            let name = adapter_name(a);
            let agreed = a.true_fake + a.true_real;
            let note = match a.accuracy {
                Some(r) => format!("{agreed}/{} · {:.0}%", a.corrected, r * 100.0),
                None => "no corrections".into(),
            };
            Row {
                title: format!(
                    "{name}: {agreed} of {} corrected verdicts kept their label \
                     ({} verdicts; precision {}, recall {})",
                    a.corrected,
                    a.verdicts,
                    figure(a.precision),
                    figure(a.recall)
                ),
                label: name,
                value: a.accuracy.unwrap_or(0.0),
                class: "bar-agree",
                note,
            }
        })
        .collect();
    let corrected: u64 = s.adapters.iter().map(|a| a.corrected).sum();
    let empty = if s.verdicts == 0 {
        Some(NO_VERDICTS)
    } else if corrected == 0 {
        Some("No corrected verdicts in this window.")
    } else {
        None
    };
    Figure {
        id: "chart-agreement",
        title: "Agreement with reviewers".into(),
        aria: format!(
            "Share of corrected verdicts whose label stood, per adapter: {}.",
            bars.iter()
                .map(|r| format!("{} {}", r.label, r.note))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        legend: vec![
            key("bar-agree", "label kept by the correction"),
            key("bar-track", "corrected verdicts"),
        ],
        empty,
        wide: false,
        chart: rows(560.0, 150.0, 110.0, &bars, 1.0, true),
    }
}
