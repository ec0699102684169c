//! The verdict page in a real browser: the image and the scores, who sees
//! which forms, and untrusted text that stays text (here); a follow-up
//! whose answer streams in and stays (`ask`); a correction a running worker
//! stores, through the form and through the `r` shortcut (`correct`).

mod ask;
mod correct;
mod faces;

use chrono::Utc;
use dfa::domain::access::Role;
use reqwest::header::COOKIE;
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::browser::Browser;
use crate::harness::{png, Harness, Seed};
use crate::http::{client, sign_in};

const XSS: &str = "<img src=x onerror=alert(1)>";

/// A fake verdict of a real stored image.
pub(super) async fn seeded(h: &Harness, n: u32) -> Seed {
    let sha = h.put_image(&png(n)).await;
    let seed = Seed::new(&sha, Utc::now());
    h.seed(&seed).await;
    seed
}

pub(super) fn page(id: Uuid) -> String {
    format!("/console/verdicts/{id}")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reviewer_sees_the_image_the_label_and_the_scores() {
    let h = Harness::start("console_verdict_view").await;
    let token = h.token(Role::Reviewer, "rita", None).await;
    let seed = seeded(&h, 3).await;
    let b = Browser::start("verdict_view", &h).await;
    b.sign_in(&token).await;
    b.goto(&format!("{}?tenant=acme&label=fake", page(seed.request_id)))
        .await;

    let width = b
        .wait_js(
            "const i = document.getElementById('image'); return i.complete ? i.naturalWidth : 0;",
            |v| v.as_u64().unwrap_or(0) > 0,
        )
        .await;
    assert_eq!(width, 64, "the stored image loaded");
    let label = b.find("#verdict-label").await.text().await.unwrap();
    assert_eq!(label.to_lowercase(), "fake");
    assert!(b
        .find("#p-fake")
        .await
        .text()
        .await
        .unwrap()
        .contains("0.90"));
    // p_fake and the four type scores, as long as their values.
    let widths = b
        .js(
            "return [...document.querySelectorAll('svg#scores rect.value')]
                .map(r => [r.closest('g').dataset.key, Number(r.getAttribute('width'))]);",
            vec![],
        )
        .await;
    assert_eq!(
        widths,
        json!([
            ["p_fake", 216],
            ["face_swap", 168],
            ["face_reenactment", 24],
            ["face_editing", 24],
            ["entire_face_synthesis", 24]
        ])
    );
    let region = b
        .find("#artifacts .artifact .region")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(region, "Eyes");
    let next = b
        .find("a#next")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(
        next,
        format!(
            "/console/queue/next?after={}&tenant=acme&label=fake",
            seed.request_id
        ),
        "next keeps the queue's filters"
    );
    assert!(b.has("form#ask textarea#question").await && b.has("form#correction").await);
    b.screenshot("verdict").await;
    b.close().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn readers_get_no_forms_and_hidden_verdicts_are_404_pages() {
    let h = Harness::start("console_verdict_roles").await;
    let seed = seeded(&h, 4).await;
    let mut other = Seed::new(&seed.image_sha256, Utc::now());
    other.tenant = Some("globex".into());
    h.seed(&other).await;
    let analyst = h.token(Role::Analyst, "ali", None).await;
    let acme = h.token(Role::Reviewer, "rae", Some("acme")).await;
    let http = client();
    let get = |cookie: String, path: String| {
        let req = http.get(h.url(&path)).header(COOKIE, cookie);
        async move {
            let r = req.send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };

    let s = sign_in(&h, &analyst).await;
    let (status, html) = get(s.cookie_header(), page(seed.request_id)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"verdict-label\""), "{html}");
    assert!(
        !html.contains("id=\"ask\"") && !html.contains("id=\"correction\""),
        "{html}"
    );

    let s = sign_in(&h, &acme).await;
    for path in [
        page(other.request_id),
        page(seed.request_id),
        page(Uuid::new_v4()),
        "/console/verdicts/nope".into(),
    ] {
        let (status, html) = get(s.cookie_header(), path.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(html.contains("verdict not found"), "{path}: {html}");
    }
    h.stop().await;
}
#[tokio::test(flavor = "multi_thread")]
async fn untrusted_text_renders_as_text_and_runs_nothing() {
    let h = Harness::start("console_verdict_xss").await;
    let token = h.token(Role::Reviewer, "rita", None).await;
    let sha = h.put_image(&png(9)).await;
    let mut seed = Seed::new(&sha, Utc::now());
    seed.explanation = Some(XSS.into());
    h.seed(&seed).await;
    let pool = &h.env.pool;
    sqlx::query("UPDATE verdicts SET artifacts = $2, metadata = $3 WHERE request_id = $1")
        .bind(seed.request_id)
        .bind(json!([{"region": XSS, "text": XSS}]))
        .bind(json!({"case": XSS, XSS: [XSS]}))
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO corrections (request_id, reviewer, label, forgery_type, artifacts, note, created_at, \
             source_topic, source_partition, source_offset) \
         VALUES ($1, $2, 'fake', 'face_swap', $3, $2, now(), 'test', 0, 0)",
    )
    .bind(seed.request_id)
    .bind(XSS)
    .bind(json!([{"region": XSS, "text": XSS}]))
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO conversation_messages (request_id, turn, role, author, content, adapter_id) \
         VALUES ($1, 0, 'user', $2, $2, NULL), ($1, 1, 'assistant', NULL, $2, $2)",
    )
    .bind(seed.request_id)
    .bind(XSS)
    .execute(pool)
    .await
    .unwrap();

    let b = Browser::start("verdict_xss", &h).await;
    b.sign_in(&token).await;
    b.goto(&page(seed.request_id)).await;
    b.find("#verdict-label").await;
    assert!(!b.dialog_open().await, "no script ran");
    assert!(!b.has("img[src='x']").await, "no element was injected");
    for css in [
        "#artifacts .artifact .text",
        "#artifacts .artifact .region",
        "#metadata",
        ".correction .note",
        ".correction .reviewer",
        "#conversation .turn:not(.screening) .text",
    ] {
        let text = b.find(css).await.text().await.unwrap();
        assert!(text.contains(XSS), "{css} shows the literal text: {text:?}");
    }
    b.close().await;
    h.stop().await;
}
