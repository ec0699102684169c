//! `GET /console/verdicts/{id}`: the page reviewers spend their day on.
//! The image and the verdict first (label, p_fake and the type scores as
//! server-drawn SVG bars), then the artifact description region by region,
//! the conversation with an ask box whose answer streams in, and the
//! correction form (assets/verdict.js does the asking, correcting and
//! keyboard shortcuts through the `/api` routes).
//!
//! The verdict is read by the API's own loader (`verdicts::load_verdict`):
//! the same permission (Read) and tenant checks, and an unknown or hidden
//! verdict is the same 404.
//!
//! A verdict with faces shows a box over each face on the image, the faces
//! as a numbered list (the primary one marked), and a face selector in the
//! ask box; a `no_face` verdict says that no face was found instead of a
//! label and scores.
//!
//! - `scores`: the bars' geometry
//! - `faces`: the boxes' geometry and the image's size
//! - `facts`: artifacts, metadata and the "next" link from the stored JSON

mod faces;
mod facts;
mod scores;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use minijinja::{context, Value};

use super::pages::{page, ConsoleError, Viewer};
use crate::domain::ForgeryType;
use crate::serve::state::App;
use crate::serve::verdicts::load_verdict;

pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/console/verdicts/{id}", get(show))
}

async fn show(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Html<String>, ConsoleError> {
    let v = load_verdict(&app, &viewer.caller(), &raw).await?;
    let threshold = f64::from(app.settings.analysis.threshold);
    // A `no_face` verdict has no label or p_fake: no chart.
    let chart = v.label.as_deref().zip(v.p_fake).map(|(label, p_fake)| {
        scores::chart(
            label,
            f64::from(p_fake),
            v.type_scores.as_ref().unwrap_or(&serde_json::Value::Null),
            v.forgery_type.as_deref(),
            threshold,
        )
    });
    let overlay = if v.faces.is_empty() {
        None
    } else {
        faces::overlay(image_size(&app, &v.image.sha256).await, &v.faces)
    };
    let (metadata, metadata_more) = facts::metadata(&v.metadata);
    let type_names: BTreeMap<&str, &str> = ForgeryType::ALL
        .into_iter()
        .map(|t| (t.as_str(), t.human_name()))
        .collect();
    // Worth a second look: the queue's own rule (`console.near_threshold`).
    let near = v
        .p_fake
        .is_some_and(|p| super::queue::flagging(&app).near(p));
    page(
        &viewer,
        "verdict.html",
        "queue",
        context! {
            next => facts::next_href(v.request_id, query.as_deref()),
            regions => facts::regions(&v.artifacts),
            chart => Value::from_serialize(&chart),
            overlay => Value::from_serialize(&overlay),
            metadata,
            metadata_more,
            types => ForgeryType::ALL
                .map(|t| context! { value => t.as_str(), name => t.human_name() }),
            type_names,
            near,
            v => Value::from_serialize(&v),
        },
    )
}

/// The stored image's size as browsers show it, for the face boxes; None
/// when it is gone (retention) or unreadable: the faces are still listed.
async fn image_size(app: &App, sha256: &str) -> Option<(u32, u32)> {
    let (images, sha) = (app.images.clone(), sha256.to_string());
    let read = tokio::task::spawn_blocking(move || images.get(&sha).ok());
    read.await
        .ok()
        .flatten()
        .and_then(|bytes| faces::shown_size(&bytes))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::super::pages::render;
    use super::*;
    use crate::serve::verdicts::FaceView;

    const XSS: &str = "<img src=x onerror=alert(1)>";

    /// The page's context around a verdict's JSON, as `show` builds it
    /// (the faces' overlay on an image of `size`).
    fn rendered(v: serde_json::Value, can: bool) -> String {
        rendered_on(v, can, None, &[])
    }

    fn rendered_on(
        mut v: serde_json::Value,
        can: bool,
        size: Option<(u32, u32)>,
        faces: &[FaceView],
    ) -> String {
        let chart = v["label"]
            .as_str()
            .map(|l| scores::chart(l, 0.9, &v["type_scores"], Some("face_swap"), 0.5));
        let overlay = faces::overlay(size, faces);
        v["faces"] = serde_json::to_value(faces).unwrap();
        let (metadata, metadata_more) = facts::metadata(&v["metadata"]);
        let ctx = context! {
            viewer => context! { name => XSS, role => "reviewer", tenant => XSS, can_ask => can,
                                 can_correct => can, can_stats => false, can_adapters => false },
            csrf => "c", nav => "queue",
            next => facts::next_href(Uuid::nil(), Some("q=<b>")),
            regions => facts::regions(&v["artifacts"]),
            chart => Value::from_serialize(&chart),
            overlay => Value::from_serialize(&overlay),
            metadata, metadata_more,
            types => ForgeryType::ALL.map(|t| context! { value => t.as_str(), name => t.human_name() }),
            type_names => ForgeryType::ALL.into_iter().map(|t| (t.as_str(), t.human_name())).collect::<BTreeMap<_, _>>(),
            near => true,
            v => Value::from_serialize(&v),
        };
        render("verdict.html", ctx).expect("renders").0
    }

    fn verdict() -> serde_json::Value {
        json!({
            "request_id": Uuid::nil(), "created_at": "2026-01-01T00:00:00Z", "tenant": XSS,
            "status": "analysed", "face_mode": "off", "face_count": null, "primary_face": null,
            "faces_skipped": {"too_small": 0, "over_cap": 0}, "reused_from": null,
            "label": "fake", "p_fake": 0.9, "forgery_type": "face_swap",
            "type_scores": {"face_swap": 0.7}, "artifacts": [{"region": XSS, "text": XSS}],
            "explanation": XSS, "adapter_id": XSS, "metadata": {XSS: XSS},
            "image": {"sha256": "ab".repeat(32), "source": XSS, "url": "/api/verdicts/x/image"},
            "conversation": [{"author": XSS, "role": "user", "text": XSS, "adapter": null,
                              "time": "2026-01-01T00:00:00Z", "screening": false},
                             {"author": null, "role": "assistant", "text": XSS, "adapter": XSS,
                              "time": "2026-01-01T00:00:00Z", "screening": true}],
            "corrections": [{"reviewer": XSS, "label": "fake", "forgery_type": "morphing",
                             "artifacts": [{"region": XSS, "text": XSS}, "loose"], "note": XSS,
                             "created_at": "2026-01-01T00:00:00Z"}]
        })
    }

    #[test]
    fn untrusted_text_is_escaped_everywhere_on_the_page() {
        let html = rendered(verdict(), true);
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(!html.contains("style="), "no inline styles (CSP)");
        assert!(!html.contains("<script>"), "no inline scripts (CSP)");
        for id in [
            "id=\"ask\"",
            "id=\"correction\"",
            "id=\"scores\"",
            "id=\"next\"",
        ] {
            assert!(html.contains(id), "{id}");
        }
    }

    #[test]
    fn readers_without_ask_or_correct_get_no_forms_and_odd_data_still_renders() {
        let mut v = verdict();
        v["artifacts"] = json!([]);
        v["corrections"] = json!([]);
        v["forgery_type"] = json!(null);
        v["metadata"] = json!(null);
        let html = rendered(v, false);
        assert!(!html.contains("id=\"ask\"") && !html.contains("id=\"correction\""));
        assert!(
            html.contains("class=\"explanation text\""),
            "the explanation stands in"
        );
        assert!(html.contains("None yet."));
    }

    fn face(index: u32, x: u32, p_fake: f32, primary: bool) -> FaceView {
        use crate::domain::{Artifact, BBox, CropSquare, FaceVerdict, Label, TypeScores};
        let label = Label::from_score(p_fake, 0.5);
        let verdict = FaceVerdict {
            index,
            bbox: BBox {
                x,
                y: 40,
                w: 60,
                h: 70,
            },
            detector_score: 12.5,
            crop: CropSquare { x, y: 30, side: 80 },
            label,
            p_fake,
            forgery_type: (label == Label::Fake).then_some(ForgeryType::FaceSwap),
            type_scores: TypeScores::from_array([0.7, 0.1, 0.1, 0.1]),
            artifacts: vec![Artifact {
                region: XSS.into(),
                text: format!("face {index}: {XSS}"),
            }],
            explanation: None,
        };
        FaceView::of(verdict, primary.then_some(index))
    }

    #[test]
    fn faces_are_boxed_on_the_image_listed_and_asked_about() {
        let mut v = verdict();
        v["face_mode"] = json!("detect");
        v["face_count"] = json!(2);
        v["primary_face"] = json!(1);
        let faces = [face(0, 10, 0.2, false), face(1, 200, 0.9, true)];
        let html = rendered_on(v, true, Some((400, 300)), &faces);
        assert!(html.contains("viewBox=\"0 0 400 300\""), "{html}");
        assert_eq!(html.matches("<rect class=\"face-box\"").count(), 2);
        assert!(html.contains("x=\"200\" y=\"40\" width=\"60\" height=\"70\""));
        assert_eq!(html.matches("<li class=\"face").count(), 2);
        assert!(html.contains("<li class=\"face primary\" data-face=\"1\">"));
        assert_eq!(
            html.matches("class=\"face-mark face-fake primary\"")
                .count(),
            1
        );
        // The ask box names a face, the primary one by default.
        assert!(html.contains("<select id=\"ask-face\" name=\"face\">"));
        assert!(html.contains("<option value=\"1\" selected>"), "{html}");
        assert!(!html.contains("<img src=x"), "faces' text is escaped");
        assert!(!html.contains("style="), "no inline styles (CSP)");
    }

    #[test]
    fn one_face_needs_no_selector_and_a_lost_image_no_boxes() {
        let faces = [face(0, 10, 0.9, true)];
        let html = rendered_on(verdict(), true, None, &faces);
        assert!(!html.contains("id=\"face-boxes\""));
        assert!(html.contains("id=\"faces\""), "still listed");
        assert!(!html.contains("name=\"face\""));
    }

    #[test]
    fn a_no_face_verdict_says_no_face_was_found() {
        let mut v = verdict();
        for k in [
            "label",
            "p_fake",
            "forgery_type",
            "type_scores",
            "explanation",
        ] {
            v[k] = json!(null);
        }
        v["artifacts"] = json!([]);
        v["status"] = json!("no_face");
        v["face_mode"] = json!("detect");
        v["face_count"] = json!(0);
        let html = rendered_on(v, true, Some((64, 64)), &[]);
        assert!(html.contains("id=\"no-face\""), "{html}");
        assert!(html.contains("No face was found"));
        assert!(!html.contains("id=\"scores\""), "no scores to draw");
        assert!(!html.contains("id=\"faces\""));
        assert!(html.contains("id=\"correction\""), "still correctable");
    }
}
