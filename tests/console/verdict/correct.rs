//! Corrections on the verdict page: pending until a running worker has
//! stored them, through the form and through the `r` shortcut.

use std::time::Duration;

use dfa::domain::access::Role;
use fantoccini::Locator;
use serde_json::{json, Value};

use super::{page, seeded};
use crate::browser::Browser;
use crate::common::child::Worker;
use crate::harness::Harness;

/// The feedback signing key the server and the worker share.
const KEY: &str = "console-verdict-signing-key-of-32-bytes-or-more";
/// A worker's start (it loads the tiny model) plus storing one correction.
const STORED_WAIT: Duration = Duration::from_secs(120);

/// The corrections the page lists: reviewer, label, type and note of each.
async fn listed(b: &Browser) -> Value {
    b.js(
        "const t = (c, css) => { const e = c.querySelector(css); return e ? e.textContent : ''; };
         return [...document.querySelectorAll('#corrections .correction')]
            .map(c => [t(c, '.reviewer'), t(c, '.label'), t(c, '.type'), t(c, '.note')]);",
        vec![],
    )
    .await
}

/// The correction status once a worker has stored the correction.
async fn wait_stored(b: &Browser, worker: &Worker) {
    let stored = b
        .client
        .wait()
        .at_most(STORED_WAIT)
        .for_element(Locator::Css("#correction-status[data-state=stored]"))
        .await;
    if stored.is_err() {
        let status = b.wait_text("#correction-status", |_| true).await;
        panic!(
            "not stored: status {status:?}\nworker log:\n{}",
            worker.stderr()
        );
    }
}
#[tokio::test(flavor = "multi_thread")]
async fn a_correction_from_the_form_is_pending_then_stored_by_a_worker() {
    let h = Harness::start_with("console_verdict_correct", |s| {
        s.feedback.signing_key = KEY.to_string().into();
    })
    .await;
    let worker = h.env.start_worker(&[("DFA__FEEDBACK__SIGNING_KEY", KEY)]);
    let token = h.token(Role::Reviewer, "rosa@trust-and-safety", None).await;
    let seed = seeded(&h, 6).await;
    let b = Browser::start("verdict_correct", &h).await;
    b.sign_in(&token).await;
    b.goto(&page(seed.request_id)).await;

    b.find("#correction input[name=label][value=fake]")
        .await
        .click()
        .await
        .unwrap();
    b.find("#forgery-type option[value=face_editing]")
        .await
        .click()
        .await
        .unwrap();
    // The model's region is there to describe; one more is added.
    let region = b.find("#artifact-rows .artifact-row .row-region").await;
    assert_eq!(region.prop("value").await.unwrap().as_deref(), Some("Eyes"));
    b.find("#artifact-rows .artifact-row .row-text")
        .await
        .send_keys("catchlights point two ways")
        .await
        .unwrap();
    b.find("#add-artifact").await.click().await.unwrap();
    b.find("#artifact-rows .artifact-row:nth-of-type(2) .row-region")
        .await
        .send_keys("Jaw")
        .await
        .unwrap();
    b.find("#artifact-rows .artifact-row:nth-of-type(2) .row-text")
        .await
        .send_keys("the blend line shows")
        .await
        .unwrap();
    b.find("#note")
        .await
        .send_keys("checked against the source video")
        .await
        .unwrap();
    b.find("#correction-submit").await.click().await.unwrap();

    b.find("#correction-status[data-state=pending]").await;
    wait_stored(&b, &worker).await;
    let (reviewer, label, kind, artifacts, note): (String, String, Option<String>, Value, Option<String>) =
        sqlx::query_as("SELECT reviewer, label, forgery_type, artifacts, note FROM corrections WHERE request_id = $1")
            .bind(seed.request_id)
            .fetch_one(&h.env.pool)
            .await
            .unwrap();
    assert_eq!(
        (reviewer.as_str(), label.as_str()),
        ("rosa@trust-and-safety", "fake")
    );
    assert_eq!(kind.as_deref(), Some("face_editing"));
    assert_eq!(
        artifacts,
        json!([{"region": "Eyes", "text": "catchlights point two ways"},
               {"region": "Jaw", "text": "the blend line shows"}])
    );
    assert_eq!(note.as_deref(), Some("checked against the source video"));
    assert_eq!(
        listed(&b).await,
        json!([[
            "rosa@trust-and-safety",
            "fake",
            "Face editing",
            "checked against the source video"
        ]]),
        "the page lists what the worker stored"
    );
    b.screenshot("verdict-corrected").await;
    b.close().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_r_key_marks_real_and_keys_typed_in_fields_do_nothing() {
    let h = Harness::start_with("console_verdict_keys", |s| {
        s.feedback.signing_key = KEY.to_string().into();
    })
    .await;
    let worker = h.env.start_worker(&[("DFA__FEEDBACK__SIGNING_KEY", KEY)]);
    let token = h.token(Role::Reviewer, "kim", None).await;
    let seed = seeded(&h, 8).await;
    let b = Browser::start("verdict_keys", &h).await;
    b.sign_in(&token).await;
    b.goto(&page(seed.request_id)).await;

    // Typed into a field, `r` is text (the handler runs synchronously: a
    // shortcut would have shown "Sending…" by now).
    b.find("#note").await.send_keys("r").await.unwrap();
    assert!(b
        .find("#correction-status")
        .await
        .attr("hidden")
        .await
        .unwrap()
        .is_some());

    b.js("document.activeElement.blur();", vec![]).await;
    b.find("body").await.send_keys("r").await.unwrap();
    wait_stored(&b, &worker).await;
    let (reviewer, label, kind): (String, String, Option<String>) = sqlx::query_as(
        "SELECT reviewer, label, forgery_type FROM corrections WHERE request_id = $1",
    )
    .bind(seed.request_id)
    .fetch_one(&h.env.pool)
    .await
    .unwrap();
    assert_eq!(
        (reviewer.as_str(), label.as_str(), kind),
        ("kim", "real", None)
    );
    // The shortcut sends the form as it stands: the note typed above too.
    assert_eq!(listed(&b).await, json!([["kim", "real", "", "r"]]));

    // `n` goes to the next verdict in the queue: there is none after the
    // only one, so to the queue itself.
    b.find("body").await.send_keys("n").await.unwrap();
    let at = b.wait_path(|p| p == "/console/queue").await;
    assert_eq!(at, "/console/queue");
    b.close().await;
    h.stop().await;
}
