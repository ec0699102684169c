//! Volume: verdicts per bucket by label, and fakes per forgery type.

use super::super::charts::{columns, rows, Column, Frame, Row, Segment};
use super::{bucket_names, count, headlines, key, ratio, Figure, NO_VERDICTS};
use crate::domain::ForgeryType;
use crate::serve::stats::Stats;

/// Verdicts per bucket, fakes stacked under reals, and on top those on
/// images without a face (no label).
pub fn daily(s: &Stats) -> Figure {
    let cols: Vec<Column> = s
        .buckets
        .iter()
        .map(|b| {
            let (label, when) = bucket_names(&s.bucket, b.start);
            let (fake, real) = (count(&b.labels, "fake"), count(&b.labels, "real"));
            Column {
                label,
                segments: vec![
                    Segment {
                        value: fake,
                        class: "bar-fake",
                        title: format!("{when}: {fake} fake of {}", b.verdicts),
                    },
                    Segment {
                        value: real,
                        class: "bar-real",
                        title: format!("{when}: {real} real of {}", b.verdicts),
                    },
                    Segment {
                        value: b.no_face,
                        class: "bar-none",
                        title: format!("{when}: {} without a face of {}", b.no_face, b.verdicts),
                    },
                ],
            }
        })
        .collect();
    let frame = Frame {
        width: 1160.0,
        height: 190.0,
        left: 44.0,
        right: 12.0,
        top: 12.0,
        bottom: 26.0,
    };
    let h = headlines(s);
    Figure {
        id: "chart-daily",
        title: format!("Verdicts per {}", s.bucket),
        aria: format!(
            "Verdicts per {} from {} to {}: {} fake, {} real{}.",
            s.bucket,
            s.since.format("%-d %b %Y"),
            s.until.format("%-d %b %Y"),
            h.fake,
            h.screened.saturating_sub(h.fake),
            if h.no_face > 0 {
                format!(" and {} without a face", h.no_face)
            } else {
                String::new()
            }
        ),
        legend: {
            let mut legend = vec![key("bar-fake", "fake"), key("bar-real", "real")];
            if h.no_face > 0 {
                legend.push(key("bar-none", "no face found"));
            }
            legend
        },
        empty: (s.verdicts == 0).then_some(NO_VERDICTS),
        wide: true,
        chart: columns(frame, &cols, 4),
    }
}

/// Fake verdicts per forgery type over the window (and those the model
/// named no type for).
pub fn types(s: &Stats) -> Figure {
    let fakes: u64 = s.buckets.iter().map(|b| count(&b.labels, "fake")).sum();
    let mut per_type: Vec<(String, u64)> = ForgeryType::ALL
        .iter()
        .map(|t| {
            let n = s
                .buckets
                .iter()
                .map(|b| count(&b.forgery_types, t.as_str()))
                .sum();
            (t.human_name().to_string(), n)
        })
        .collect();
    let typed: u64 = per_type.iter().map(|(_, n)| n).sum();
    if fakes > typed {
        per_type.push(("no type given".into(), fakes - typed));
    }
    let max = per_type.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let bars: Vec<Row> = per_type
        .iter()
        .map(|(name, n)| {
            let share = ratio(*n, fakes).map_or(String::new(), |r| format!(" · {:.0}%", r * 100.0));
            Row {
                label: name.clone(),
                value: *n as f64,
                class: "bar-type",
                title: format!("{name}: {n} of {fakes} fake verdicts"),
                note: format!("{n}{share}"),
            }
        })
        .collect();
    let empty = if s.verdicts == 0 {
        Some(NO_VERDICTS)
    } else if fakes == 0 {
        Some("No fake verdicts in this window.")
    } else {
        None
    };
    Figure {
        id: "chart-types",
        title: "Fakes by forgery type".into(),
        aria: format!(
            "Fake verdicts by forgery type: {}.",
            per_type
                .iter()
                .map(|(name, n)| format!("{name} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        legend: vec![key(
            "bar-type",
            "fake verdicts of the type, and their share",
        )],
        empty,
        wide: false,
        chart: rows(560.0, 150.0, 80.0, &bars, max as f64, false),
    }
}
