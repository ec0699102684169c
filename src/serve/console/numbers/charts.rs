//! Chart geometry: every rectangle, line and label of a chart, computed
//! here so the template only draws what it is given (no JavaScript, no
//! chart library, nothing inline for the CSP to refuse: colours are
//! classes). Two shapes cover the numbers page: columns stacked on a count
//! axis (per day, the histogram) and horizontal bars with a label on the
//! left and a figure on the right (per type, per adapter).

use serde::Serialize;

/// A chart's viewBox and the margins around its plot area (axis labels
/// live in the margins).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
}

impl Frame {
    fn plot_width(&self) -> f64 {
        (self.width - self.left - self.right).max(1.0)
    }

    fn plot_height(&self) -> f64 {
        (self.height - self.top - self.bottom).max(1.0)
    }

    /// The y of a zero count.
    fn baseline(&self) -> f64 {
        self.height - self.bottom
    }

    /// The x of `fraction` (0 to 1) of the plot's width.
    pub fn x_at(&self, fraction: f64) -> f64 {
        round(self.left + fraction.clamp(0.0, 1.0) * self.plot_width())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    pub class: &'static str,
    /// The tooltip (`<title>`): what the bar stands for, in words.
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
    pub class: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Text {
    pub x: f64,
    pub y: f64,
    pub text: String,
    /// SVG `text-anchor`: `start`, `middle` or `end`.
    pub anchor: &'static str,
    pub class: &'static str,
}

/// What the template draws, in this order: lines (grid, axes), bars, text.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub rects: Vec<Rect>,
    pub lines: Vec<Line>,
    pub texts: Vec<Text>,
}

/// Tenths of a unit are finer than a screen shows, and keep pages small.
fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// A count axis from 0: its top and step, the step being 1, 2 or 5 times a
/// power of ten so that at most `ticks` steps reach past `max`.
pub fn count_scale(max: u64, ticks: u64) -> (u64, u64) {
    let ticks = ticks.max(1);
    let mut magnitude = 1u64;
    loop {
        for m in [1, 2, 5] {
            let step = m * magnitude;
            if max.div_ceil(step) <= ticks {
                return (max.div_ceil(step).max(1) * step, step);
            }
        }
        magnitude = magnitude.saturating_mul(10);
    }
}

/// One part of a stacked column.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub value: u64,
    pub class: &'static str,
    pub title: String,
}

/// One column: its segments from the bottom up, and the label under it
/// (empty: none).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub label: String,
    pub segments: Vec<Segment>,
}

/// Widest a column gets, so one or two columns do not fill the chart.
const MAX_COLUMN: f64 = 56.0;
/// Room one label under a column needs; labels are thinned to fit.
const LABEL_ROOM: f64 = 52.0;

/// Stacked columns side by side in equal slots over the plot's width, on a
/// count axis of about `ticks` steps with grid lines. Zero segments draw
/// nothing. Slot `i` spans `x_at(i / n)..x_at((i + 1) / n)`.
pub fn columns(frame: Frame, cols: &[Column], ticks: u64) -> Chart {
    let mut chart = Chart {
        width: frame.width,
        height: frame.height,
        ..Chart::default()
    };
    let max = cols
        .iter()
        .map(|c| c.segments.iter().map(|s| s.value).sum::<u64>())
        .max()
        .unwrap_or(0);
    let (top, step) = count_scale(max, ticks);
    let per_unit = frame.plot_height() / top as f64;
    let base = frame.baseline();
    let right = frame.width - frame.right;
    for tick in (0..=top).step_by(step as usize) {
        let y = round(base - tick as f64 * per_unit);
        let class = if tick == 0 { "axis" } else { "grid" };
        chart.lines.push(Line {
            x1: frame.left,
            y1: y,
            x2: right,
            y2: y,
            class,
        });
        chart.texts.push(Text {
            x: frame.left - 6.0,
            y: round(y + 4.0),
            text: tick.to_string(),
            anchor: "end",
            class: "tick",
        });
    }
    let n = cols.len().max(1) as f64;
    let slot = frame.plot_width() / n;
    let width = (slot * 0.75).clamp(1.0, MAX_COLUMN);
    let every = ((LABEL_ROOM / slot).ceil() as usize).max(1);
    for (i, col) in cols.iter().enumerate() {
        let x = frame.left + i as f64 * slot + (slot - width) / 2.0;
        let mut stacked = 0u64;
        for s in col.segments.iter().filter(|s| s.value > 0) {
            let y = base - (stacked + s.value) as f64 * per_unit;
            chart.rects.push(Rect {
                x: round(x),
                y: round(y),
                width: round(width),
                height: round(s.value as f64 * per_unit),
                class: s.class,
                title: s.title.clone(),
            });
            stacked += s.value;
        }
        if !col.label.is_empty() && i % every == 0 {
            chart.texts.push(Text {
                x: round(x + width / 2.0),
                y: round(base + 15.0),
                text: col.label.clone(),
                anchor: "middle",
                class: "tick",
            });
        }
    }
    chart
}

/// One horizontal bar: `value` of the chart's `max`, a label on the left,
/// a figure (`note`) on the right.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub label: String,
    pub value: f64,
    pub class: &'static str,
    pub title: String,
    pub note: String,
}

/// Height of one row of horizontal bars, and of its bar.
const ROW: f64 = 30.0;
const ROW_BAR: f64 = 18.0;
/// Longest row label drawn; the tooltip has it whole.
const ROW_LABEL_CHARS: usize = 22;

/// Horizontal bars, one row each, `left` wide labels and `right` wide
/// notes; the chart is as tall as its rows. With `track`, each row shows
/// the whole scale behind its bar (a rate out of `max`); a row of value 0
/// has its track and note but no bar.
pub fn rows(width: f64, left: f64, right: f64, rows: &[Row], max: f64, track: bool) -> Chart {
    let frame = Frame {
        width,
        height: 8.0 + ROW * rows.len() as f64,
        left,
        right,
        top: 4.0,
        bottom: 4.0,
    };
    let mut chart = Chart {
        width: frame.width,
        height: frame.height,
        ..Chart::default()
    };
    let max = if max > 0.0 { max } else { 1.0 };
    let full = frame.plot_width();
    for (i, row) in rows.iter().enumerate() {
        let y = frame.top + i as f64 * ROW + (ROW - ROW_BAR) / 2.0;
        let mid = round(y + ROW_BAR / 2.0 + 4.0);
        if track {
            chart.rects.push(Rect {
                x: frame.left,
                y: round(y),
                width: round(full),
                height: ROW_BAR,
                class: "bar-track",
                title: row.title.clone(),
            });
        }
        let w = (row.value / max).clamp(0.0, 1.0) * full;
        if row.value > 0.0 {
            chart.rects.push(Rect {
                x: frame.left,
                y: round(y),
                width: round(w.max(1.0)),
                height: ROW_BAR,
                class: row.class,
                title: row.title.clone(),
            });
        }
        chart.texts.push(Text {
            x: frame.left - 8.0,
            y: mid,
            text: shorten(&row.label, ROW_LABEL_CHARS),
            anchor: "end",
            class: "row-label",
        });
        let note_x = if track {
            frame.left + full
        } else {
            frame.left + w
        };
        chart.texts.push(Text {
            x: round(note_x + 6.0),
            y: mid,
            text: row.note.clone(),
            anchor: "start",
            class: "note",
        });
    }
    chart
}

/// `s` cut to `chars` characters, with an ellipsis when cut.
fn shorten(s: &str, chars: usize) -> String {
    if s.chars().count() <= chars {
        return s.to_string();
    }
    let mut cut: String = s.chars().take(chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
#[path = "charts_tests.rs"]
mod tests;
