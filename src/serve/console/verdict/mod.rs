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
//! - `scores`: the bars' geometry
//! - `facts`: artifacts, metadata and the "next" link from the stored JSON

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
    let p_fake = f64::from(v.p_fake);
    let chart = scores::chart(
        &v.label,
        p_fake,
        &v.type_scores,
        v.forgery_type.as_deref(),
        threshold,
    );
    let (metadata, metadata_more) = facts::metadata(&v.metadata);
    let type_names: BTreeMap<&str, &str> = ForgeryType::ALL
        .into_iter()
        .map(|t| (t.as_str(), t.human_name()))
        .collect();
    // Worth a second look: the queue's own rule (`console.near_threshold`).
    let near = super::queue::flagging(&app).near(v.p_fake);
    page(
        &viewer,
        "verdict.html",
        "queue",
        context! {
            next => facts::next_href(v.request_id, query.as_deref()),
            regions => facts::regions(&v.artifacts),
            chart => Value::from_serialize(&chart),
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

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::super::pages::render;
    use super::*;

    const XSS: &str = "<img src=x onerror=alert(1)>";

    /// The page's context around a verdict's JSON, as `show` builds it.
    fn rendered(v: serde_json::Value, can: bool) -> String {
        let chart = scores::chart("fake", 0.9, &v["type_scores"], Some("face_swap"), 0.5);
        let (metadata, metadata_more) = facts::metadata(&v["metadata"]);
        let ctx = context! {
            viewer => context! { name => XSS, role => "reviewer", tenant => XSS, can_ask => can,
                                 can_correct => can, can_stats => false, can_adapters => false },
            csrf => "c", nav => "queue",
            next => facts::next_href(Uuid::nil(), Some("q=<b>")),
            regions => facts::regions(&v["artifacts"]),
            chart => Value::from_serialize(&chart),
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
}
