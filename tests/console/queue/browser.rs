//! The queue in a real browser.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_reviewer_opens_the_queue_and_a_verdict_from_it_in_a_browser() {
    let h = Harness::start("console_queue_browser").await;
    let seeded = seed_classes(&h).await;
    let token = h.token(Role::Reviewer, "rita@trust-and-safety", None).await;
    let b = Browser::start("queue", &h).await;
    b.sign_in(&token).await;
    b.goto("/console/queue").await;
    b.find("table#queue tr.verdict").await;

    let ids = b
        .js(
            "return [...document.querySelectorAll('tr.verdict')].map(r => r.dataset.id);",
            vec![],
        )
        .await;
    assert_eq!(ids, serde_json::json!(seeded.all()));
    // Every thumbnail loaded: the cookie authenticates the image route.
    let widths = b
        .wait_js(
            "return [...document.querySelectorAll('img.thumb')]
            .map(i => i.complete ? i.naturalWidth : 0);",
            |v| {
                v.as_array()
                    .is_some_and(|a| !a.is_empty() && a.iter().all(|w| w.as_u64() > Some(0)))
            },
        )
        .await;
    let widths = widths.as_array().expect("widths").clone();
    assert_eq!(widths.len(), 7, "{widths:?}");
    assert!(
        widths.iter().all(|w| w.as_u64() > Some(0)),
        "thumbnails: {widths:?}"
    );
    assert_eq!(b.find("#todo-count").await.text().await.unwrap(), "3");
    b.screenshot("queue").await;

    let first = seeded.id("b");
    b.find(&format!("tr.verdict[data-id=\"{first}\"] a.open"))
        .await
        .click()
        .await
        .expect("open");
    let at = b
        .wait_path(|p| p.starts_with(&format!("/console/verdicts/{first}")))
        .await;
    assert!(
        at.starts_with(&format!("/console/verdicts/{first}?class=flagged_todo")),
        "{at}"
    );
    b.close().await;
    h.stop().await;
}
