//! The score chart's geometry: p_fake and the four forgery type scores as
//! horizontal bars, laid out here so that the template only places
//! numbers into SVG attributes (the CSP allows no inline styles; colours
//! come from classes).

use serde::Serialize;
use serde_json::Value;

use crate::domain::ForgeryType;

/// The chart's coordinate system (the SVG's viewBox; CSS scales it).
const WIDTH: f64 = 460.0;
/// Where the bars start (the names sit left of it).
const BAR_X: f64 = 150.0;
const BAR_W: f64 = 240.0;
const BAR_H: f64 = 14.0;
const ROW_H: f64 = 28.0;
/// Space between the p_fake row and the type rows.
const GAP: f64 = 10.0;

#[derive(Debug, Serialize)]
pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub bar_x: f64,
    pub bar_w: f64,
    pub bar_h: f64,
    /// Where the values are written.
    pub value_x: f64,
    /// The decision threshold on the p_fake row.
    pub threshold_x: f64,
    pub threshold_y1: f64,
    pub threshold_y2: f64,
    pub bars: Vec<Bar>,
}

#[derive(Debug, Serialize)]
pub struct Bar {
    /// `p_fake` or a forgery type's name.
    pub key: &'static str,
    pub name: &'static str,
    /// The value as shown ("–" when the model gave none).
    pub shown: String,
    pub y: f64,
    pub text_y: f64,
    pub width: f64,
    /// The fill class (console.css): `bar-fake`, `bar-real`, `bar-score`.
    pub class: &'static str,
    /// The forgery type the model named.
    pub chosen: bool,
}

/// The chart of a verdict labelled `label` with `p_fake`, its
/// `type_scores` JSON (`{"face_swap": 0.7, …}`; missing or non-numeric
/// scores show as none) and the type the model named.
pub fn chart(
    label: &str,
    p_fake: f64,
    type_scores: &Value,
    named: Option<&str>,
    threshold: f64,
) -> Chart {
    let mut bars = vec![bar(
        0,
        "p_fake",
        "p_fake",
        Some(p_fake),
        if label == "fake" {
            "bar-fake"
        } else {
            "bar-real"
        },
        false,
    )];
    for (i, t) in ForgeryType::ALL.into_iter().enumerate() {
        let key = t.as_str();
        let score = type_scores.get(key).and_then(Value::as_f64);
        bars.push(bar(
            i + 1,
            key,
            t.human_name(),
            score,
            "bar-score",
            named == Some(key),
        ));
    }
    let rows = bars.len() as f64;
    Chart {
        width: WIDTH,
        height: round(rows * ROW_H + GAP),
        bar_x: BAR_X,
        bar_w: BAR_W,
        bar_h: BAR_H,
        value_x: BAR_X + BAR_W + 10.0,
        threshold_x: round(BAR_X + BAR_W * unit(threshold)),
        threshold_y1: 2.0,
        threshold_y2: ROW_H - 2.0,
        bars,
    }
}

fn bar(
    row: usize,
    key: &'static str,
    name: &'static str,
    value: Option<f64>,
    class: &'static str,
    chosen: bool,
) -> Bar {
    // The p_fake row stands apart from the type rows.
    let top = row as f64 * ROW_H + if row > 0 { GAP } else { 0.0 };
    let y = top + (ROW_H - BAR_H) / 2.0;
    Bar {
        key,
        name,
        shown: value.map_or_else(|| "–".to_string(), |v| format!("{v:.2}")),
        y: round(y),
        text_y: round(y + BAR_H - 3.0),
        width: round(BAR_W * value.map_or(0.0, unit)),
        class,
        chosen,
    }
}

/// A score as a fraction of the bar: within [0, 1], NaN as 0.
fn unit(v: f64) -> f64 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(0.0, 1.0)
    }
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bars_are_as_long_as_their_scores_within_the_track() {
        let scores = json!({"face_swap": 0.5, "face_reenactment": 2.0, "face_editing": "x"});
        let c = chart("fake", 0.9, &scores, Some("face_swap"), 0.5);
        let keys: Vec<_> = c.bars.iter().map(|b| b.key).collect();
        assert_eq!(
            keys,
            [
                "p_fake",
                "face_swap",
                "face_reenactment",
                "face_editing",
                "entire_face_synthesis"
            ]
        );
        let widths: Vec<_> = c.bars.iter().map(|b| b.width).collect();
        assert_eq!(widths, [216.0, 120.0, 240.0, 0.0, 0.0]);
        assert_eq!(c.bars[0].class, "bar-fake");
        assert_eq!(c.bars[3].shown, "–", "a non-numeric score is none");
        assert_eq!(c.bars[2].shown, "2.00", "shown as given, drawn clamped");
        assert!(c.bars[1].chosen && !c.bars[2].chosen);
        assert_eq!(c.threshold_x, BAR_X + 120.0);
    }

    #[test]
    fn a_real_verdict_draws_p_fake_in_the_real_colour_and_rows_do_not_overlap() {
        let c = chart("real", f64::NAN, &json!(null), None, 0.5);
        assert_eq!(c.bars[0].class, "bar-real");
        assert_eq!(c.bars[0].width, 0.0);
        for pair in c.bars.windows(2) {
            assert!(pair[0].y + BAR_H < pair[1].y, "{pair:?}");
        }
        assert!(c.bars.last().map_or(0.0, |b| b.y + BAR_H) <= c.height);
    }
}
