use std::collections::BTreeMap;

use super::*;
use crate::serve::stats::{AdapterStats, BucketStats, HistogramBin};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn bucket(day: &str, fake: u64, real: u64, swaps: u64) -> BucketStats {
    BucketStats {
        start: t(day),
        verdicts: fake + real,
        labels: BTreeMap::from([("fake".into(), fake), ("real".into(), real)]),
        no_face: 0,
        forgery_types: BTreeMap::from([("face_swap".into(), swaps)]),
    }
}

fn adapter(id: Option<&str>, tf: u64, ff: u64, mf: u64, tr: u64) -> AdapterStats {
    let corrected = tf + ff + mf + tr;
    AdapterStats {
        adapter: id.map(str::to_string),
        verdicts: corrected + 1,
        no_face: 0,
        corrected,
        true_fake: tf,
        false_fake: ff,
        missed_fake: mf,
        true_real: tr,
        accuracy: ratio(tf + tr, corrected),
        precision: ratio(tf, tf + ff),
        recall: ratio(tf, tf + mf),
    }
}

fn stats(buckets: Vec<BucketStats>, hist: [u64; 10], adapters: Vec<AdapterStats>) -> Stats {
    Stats {
        since: t("2026-03-01T00:00:00Z"),
        until: t("2026-03-04T00:00:00Z"),
        bucket: "day".into(),
        tenant: None,
        verdicts: buckets.iter().map(|b| b.verdicts).sum(),
        no_face: buckets.iter().map(|b| b.no_face).sum(),
        buckets,
        p_fake_histogram: hist
            .iter()
            .enumerate()
            // As the API computes them: 3 * 0.1 is not 0.3.
            .map(|(i, n)| HistogramBin {
                from: i as f64 * 0.1,
                to: (i + 1) as f64 * 0.1,
                verdicts: *n,
            })
            .collect(),
        adapters,
    }
}

fn sample() -> Stats {
    stats(
        vec![
            bucket("2026-03-01T00:00:00Z", 3, 1, 2),
            bucket("2026-03-02T00:00:00Z", 0, 0, 0),
            bucket("2026-03-03T00:00:00Z", 0, 2, 0),
        ],
        [1, 1, 1, 0, 0, 0, 0, 0, 1, 2],
        vec![adapter(None, 2, 0, 1, 1), adapter(Some("ad1"), 0, 1, 0, 0)],
    )
}

#[test]
fn headlines_add_up_the_window() {
    let h = headlines(&sample());
    assert_eq!((h.verdicts, h.fake, h.corrected, h.agreed), (6, 3, 5, 3));
    assert_eq!(h.fake_share, Some(0.5));
    assert_eq!(h.agreement, Some(0.6));
    let none = headlines(&stats(vec![], [0; 10], vec![]));
    assert_eq!((none.fake_share, none.agreement), (None, None));
}

#[test]
fn the_daily_chart_has_a_bar_per_label_and_day_with_verdicts() {
    let f = daily(&sample());
    assert_eq!(f.empty, None);
    let classes: Vec<&str> = f.chart.rects.iter().map(|r| r.class).collect();
    assert_eq!(classes, ["bar-fake", "bar-real", "bar-real"]);
    assert_eq!(f.chart.rects[0].title, "Sun 1 Mar: 3 fake of 4");
    assert!(f.chart.texts.iter().any(|t| t.text == "3 Mar"), "dated");
    assert!(f.aria.contains("3 fake, 3 real."), "{}", f.aria);
    assert_eq!(f.legend.len(), 2, "no face-less verdicts: no key for them");
}

#[test]
fn verdicts_without_a_face_stack_on_top_and_are_not_in_the_fake_share() {
    let mut with_none = bucket("2026-03-03T00:00:00Z", 1, 1, 0);
    with_none.no_face = 2;
    with_none.verdicts += 2;
    let s = stats(vec![with_none], [0; 10], vec![]);
    let h = headlines(&s);
    assert_eq!((h.verdicts, h.no_face, h.screened), (4, 2, 2));
    assert_eq!(h.fake_share, Some(0.5), "a share of the screened verdicts");
    let f = daily(&s);
    let classes: Vec<&str> = f.chart.rects.iter().map(|r| r.class).collect();
    assert_eq!(classes, ["bar-fake", "bar-real", "bar-none"]);
    assert_eq!(f.chart.rects[2].title, "Tue 3 Mar: 2 without a face of 4");
    assert!(
        f.aria.ends_with("1 fake, 1 real and 2 without a face."),
        "{}",
        f.aria
    );
    assert!(f.legend.iter().any(|k| k.class == "bar-none"));
}

#[test]
fn types_count_fakes_without_a_type_apart() {
    let f = types(&sample());
    let bars: Vec<&str> = f.chart.rects.iter().map(|r| r.title.as_str()).collect();
    assert_eq!(
        bars,
        [
            "Face swap: 2 of 3 fake verdicts",
            "no type given: 1 of 3 fake verdicts"
        ]
    );
    assert!(f.chart.texts.iter().any(|t| t.text == "2 · 67%"));
    assert!(
        f.chart.texts.iter().any(|t| t.text == "Face reenactment"),
        "zero rows are listed"
    );
}

#[test]
fn the_histogram_marks_the_threshold_and_colours_each_side() {
    let f = histogram(&sample(), 0.5);
    let classes: Vec<&str> = f.chart.rects.iter().map(|r| r.class).collect();
    assert_eq!(
        classes,
        ["bar-real", "bar-real", "bar-real", "bar-fake", "bar-fake"]
    );
    let line = f
        .chart
        .lines
        .iter()
        .find(|l| l.class == "threshold")
        .expect("threshold");
    assert_eq!(
        (line.x1, line.x2),
        (293.0, 293.0),
        "halfway across the plot"
    );
    assert!(f.chart.texts.iter().any(|t| t.text == "threshold 0.50"));
    let at_edge = histogram(&sample(), 0.3);
    assert_eq!(
        at_edge.chart.rects[2].class, "bar-real",
        "0.2–0.3 lies below 0.3"
    );
    let straddling = histogram(&sample(), 0.85);
    assert_eq!(straddling.chart.rects[3].class, "bar-mixed");
}

#[test]
fn thresholds_on_a_bin_edge_colour_no_bin_mixed() {
    // As the page gets it: an f32 setting widened to f64 (0.7 → 0.6999999881).
    for tenth in 1..10u8 {
        let threshold = f64::from(f32::from(tenth) / 10.0);
        let mut s = sample();
        s.p_fake_histogram = (0..10)
            .map(|i| HistogramBin {
                from: f64::from(i) * 0.1,
                to: f64::from(i + 1) * 0.1,
                verdicts: 1,
            })
            .collect();
        let classes: Vec<&str> = histogram(&s, threshold)
            .chart
            .rects
            .iter()
            .map(|r| r.class)
            .collect();
        let expected: Vec<&str> = (0..10u8)
            .map(|i| if i < tenth { "bar-real" } else { "bar-fake" })
            .collect();
        assert_eq!(classes, expected, "threshold {threshold}");
    }
}

#[test]
fn agreement_shows_counts_and_rates_per_adapter() {
    let f = agreement(&sample());
    let notes: Vec<&str> = f
        .chart
        .texts
        .iter()
        .filter(|t| t.class == "note")
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(notes, ["3/4 · 75%", "0/1 · 0%"]);
    let bars = f
        .chart
        .rects
        .iter()
        .filter(|r| r.class == "bar-agree")
        .count();
    assert_eq!(bars, 1, "a rate of 0 has only its track");
    assert!(f.chart.texts.iter().any(|t| t.text == "base model"));
}

#[test]
fn empty_windows_say_so_instead_of_drawing_axes() {
    let s = stats(
        vec![bucket("2026-03-01T00:00:00Z", 0, 0, 0)],
        [0; 10],
        vec![],
    );
    for f in [daily(&s), types(&s), histogram(&s, 0.5), agreement(&s)] {
        assert_eq!(f.empty, Some(NO_VERDICTS), "{}", f.id);
    }
    let only_real = stats(
        vec![bucket("2026-03-01T00:00:00Z", 0, 2, 0)],
        [2, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        vec![adapter(None, 0, 0, 0, 0)],
    );
    assert_eq!(
        types(&only_real).empty,
        Some("No fake verdicts in this window.")
    );
    assert_eq!(
        agreement(&only_real).empty,
        Some("No corrected verdicts in this window.")
    );
    assert_eq!(daily(&only_real).empty, None);
}
