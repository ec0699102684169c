use super::*;

const FRAME: Frame = Frame {
    width: 500.0,
    height: 220.0,
    left: 40.0,
    right: 10.0,
    top: 10.0,
    bottom: 30.0,
};

fn seg(value: u64, class: &'static str) -> Segment {
    Segment {
        value,
        class,
        title: format!("{value} {class}"),
    }
}

fn col(label: &str, segments: Vec<Segment>) -> Column {
    Column {
        label: label.into(),
        segments,
    }
}

#[test]
fn count_axes_end_on_a_round_step_past_the_largest_value() {
    assert_eq!(count_scale(0, 4), (1, 1), "an empty axis still has a unit");
    assert_eq!(count_scale(1, 4), (1, 1));
    assert_eq!(count_scale(3, 4), (3, 1));
    assert_eq!(count_scale(7, 4), (8, 2));
    assert_eq!(count_scale(10, 4), (10, 5));
    assert_eq!(count_scale(41, 4), (60, 20));
    assert_eq!(count_scale(41, 5), (50, 10));
    assert_eq!(count_scale(1234, 5), (1500, 500));
    assert_eq!(count_scale(5, 0), (5, 5), "at least one step");
}

#[test]
fn segments_stack_from_the_baseline_in_proportion() {
    // Plot 180 high; the largest column (8) has top 8, step 2.
    let c = columns(
        FRAME,
        &[
            col("a", vec![seg(2, "bar-fake"), seg(6, "bar-real")]),
            col("b", vec![seg(0, "bar-fake"), seg(4, "bar-real")]),
        ],
        4,
    );
    assert_eq!(c.rects.len(), 3, "a zero segment draws nothing");
    let (fake, real) = (&c.rects[0], &c.rects[1]);
    assert_eq!(
        (fake.y + fake.height),
        190.0,
        "the first sits on the baseline"
    );
    assert_eq!(fake.height, 45.0);
    assert_eq!(real.y + real.height, fake.y, "the next sits on the first");
    assert_eq!(real.height, 135.0);
    assert_eq!(real.y, 10.0, "the tallest column reaches the top");
    assert_eq!(c.rects[2].height, 90.0);
    assert_eq!((fake.x, fake.width), (real.x, real.width));
    assert!(c.rects[2].x > fake.x + fake.width, "columns do not overlap");
    // Ticks 0, 2, 4, 6, 8, right-aligned left of the plot.
    let ticks: Vec<&str> = c
        .texts
        .iter()
        .filter(|t| t.anchor == "end")
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(ticks, ["0", "2", "4", "6", "8"]);
    assert_eq!(c.lines.iter().filter(|l| l.class == "axis").count(), 1);
    assert_eq!(c.rects[0].title, "2 bar-fake");
}

#[test]
fn a_single_column_is_centred_and_not_as_wide_as_the_chart() {
    let c = columns(FRAME, &[col("only", vec![seg(3, "bar-fake")])], 4);
    assert_eq!(c.rects.len(), 1);
    let r = &c.rects[0];
    assert_eq!(r.width, MAX_COLUMN);
    let centre = r.x + r.width / 2.0;
    assert!((centre - FRAME.x_at(0.5)).abs() < 0.2, "{centre}");
    assert_eq!((r.y, r.height), (10.0, 180.0));
    let label = c.texts.iter().find(|t| t.text == "only").expect("label");
    assert!((label.x - centre).abs() < 0.2);
}

#[test]
fn empty_data_draws_no_bars() {
    let c = columns(FRAME, &[], 4);
    assert!(c.rects.is_empty());
    let c = columns(FRAME, &[col("a", vec![seg(0, "bar-fake")])], 4);
    assert!(c.rects.is_empty());
    let r = rows(400.0, 100.0, 80.0, &[], 1.0, true);
    assert!(r.rects.is_empty() && r.texts.is_empty());
}

#[test]
fn labels_thin_out_when_columns_are_narrow() {
    let many: Vec<Column> = (0..90)
        .map(|i| col(&format!("d{i}"), vec![seg(1, "bar-real")]))
        .collect();
    let c = columns(FRAME, &many, 4);
    assert_eq!(c.rects.len(), 90);
    let labels: Vec<&Text> = c.texts.iter().filter(|t| t.text.starts_with('d')).collect();
    assert!(labels.len() < 90 && labels.len() >= 5, "{}", labels.len());
    assert_eq!(labels[0].text, "d0");
    for pair in labels.windows(2) {
        assert!(pair[1].x - pair[0].x >= LABEL_ROOM - 0.2, "labels overlap");
    }
}

#[test]
fn slots_line_up_with_fractions_of_the_width() {
    // The histogram marks its threshold by x_at: bin i's slot must
    // start at x_at(i / n).
    let ten: Vec<Column> = (0..10).map(|_| col("", vec![seg(1, "bar-real")])).collect();
    let c = columns(FRAME, &ten, 4);
    let slot = (FRAME.width - FRAME.left - FRAME.right) / 10.0;
    for (i, r) in c.rects.iter().enumerate() {
        let centre = r.x + r.width / 2.0;
        let want = (FRAME.x_at(i as f64 / 10.0) + FRAME.x_at((i + 1) as f64 / 10.0)) / 2.0;
        assert!((centre - want).abs() < 0.2, "bin {i}: {centre} vs {want}");
        assert!(r.width < slot);
    }
    assert_eq!(FRAME.x_at(0.0), 40.0);
    assert_eq!(FRAME.x_at(1.0), 490.0);
    assert_eq!(FRAME.x_at(2.0), 490.0, "clamped");
}

#[test]
fn rows_scale_bars_to_the_maximum_and_keep_their_tracks() {
    let row = |label: &str, value: f64| Row {
        label: label.into(),
        value,
        class: "bar-agree",
        title: label.into(),
        note: format!("{value}"),
    };
    let c = rows(
        400.0,
        100.0,
        100.0,
        &[row("base model", 1.0), row("half", 0.5), row("none", 0.0)],
        1.0,
        true,
    );
    assert_eq!(c.height, 8.0 + 3.0 * ROW);
    let tracks: Vec<&Rect> = c.rects.iter().filter(|r| r.class == "bar-track").collect();
    let bars: Vec<&Rect> = c.rects.iter().filter(|r| r.class == "bar-agree").collect();
    assert_eq!(tracks.len(), 3);
    assert_eq!(bars.len(), 2, "a zero rate has no bar");
    assert_eq!(bars[0].width, 200.0);
    assert_eq!(bars[1].width, 100.0);
    assert!(bars[1].y > bars[0].y);
    let notes: Vec<&Text> = c.texts.iter().filter(|t| t.class == "note").collect();
    assert!(
        notes.iter().all(|t| t.x == 306.0),
        "notes line up past the tracks"
    );
    // Without tracks, the note follows its bar.
    let c = rows(
        400.0,
        100.0,
        60.0,
        &[row("a", 4.0), row("b", 2.0)],
        4.0,
        false,
    );
    assert_eq!(c.rects.len(), 2);
    let notes: Vec<f64> = c
        .texts
        .iter()
        .filter(|t| t.class == "note")
        .map(|t| t.x)
        .collect();
    assert_eq!(notes, [346.0, 226.0]);
}

#[test]
fn long_row_labels_are_cut() {
    assert_eq!(shorten("base model", 22), "base model");
    assert_eq!(shorten("abcdef", 4), "abc…");
    let c = rows(
        400.0,
        100.0,
        60.0,
        &[Row {
            label: "x".repeat(40),
            value: 1.0,
            class: "bar-agree",
            title: "x".repeat(40),
            note: String::new(),
        }],
        1.0,
        false,
    );
    let label = c.texts.iter().find(|t| t.class == "row-label").unwrap();
    assert_eq!(label.text.chars().count(), ROW_LABEL_CHARS);
    assert_eq!(c.rects[0].title.len(), 40, "the tooltip has it whole");
}
