//! The analysts' charts, in a real browser.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use dfa::domain::access::Role;
use dfa::domain::verdict_query::Bucket;
use fantoccini::Locator;
use serde_json::json;

use crate::browser::Browser;
use crate::harness::{Harness, Seed};

/// One seeded verdict: days before now, label, type, p_fake, adapter, and
/// the label a reviewer corrected it to.
type Row = (
    i64,
    &'static str,
    Option<&'static str>,
    f32,
    Option<&'static str>,
    Option<&'static str>,
);

/// Eight verdicts over four days. p_fake stays off the bins' edges.
/// Agreement: base model 2 of 3 corrected kept their label, ad1 1 of 2.
const ROWS: [Row; 8] = [
    (0, "fake", Some("face_swap"), 0.92, None, Some("fake")),
    (0, "real", None, 0.12, None, Some("fake")),
    (1, "fake", Some("face_editing"), 0.75, None, None),
    (
        1,
        "fake",
        Some("face_swap"),
        0.81,
        Some("ad1"),
        Some("real"),
    ),
    (2, "real", None, 0.33, None, Some("real")),
    (2, "real", None, 0.22, Some("ad1"), None),
    (
        3,
        "fake",
        Some("entire_face_synthesis"),
        0.97,
        Some("ad1"),
        Some("fake"),
    ),
    (3, "real", None, 0.45, None, None),
];

async fn seed(h: &Harness, now: DateTime<Utc>) -> Vec<Seed> {
    let mut seeded = Vec::new();
    for (i, (days, label, forgery_type, p_fake, adapter, corrected)) in ROWS.into_iter().enumerate()
    {
        let mut s = Seed::new(
            &format!("{:064x}", i + 1),
            now - Duration::days(days) - Duration::minutes(10),
        );
        s.label = label;
        s.forgery_type = forgery_type;
        s.p_fake = p_fake;
        s.adapter_id = adapter.map(str::to_string);
        h.seed(&s).await;
        if let Some(truth) = corrected {
            sqlx::query(
                "INSERT INTO corrections (request_id, reviewer, label, created_at, source_topic, \
                     source_partition, source_offset) VALUES ($1, 'rita', $2, now(), 'test', 0, $3)",
            )
            .bind(s.request_id)
            .bind(truth)
            .bind(i as i64)
            .execute(&h.env.pool)
            .await
            .expect("correction row");
        }
        seeded.push(s);
    }
    seeded
}

/// How many elements match `css` now.
async fn count(b: &Browser, css: &str) -> usize {
    b.client
        .find_all(Locator::Css(css))
        .await
        .expect("find_all")
        .len()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_analyst_sees_the_charts_and_cannot_ask_or_correct() {
    let h = Harness::start("console_numbers").await;
    let now = Utc::now();
    let seeded = seed(&h, now).await;
    let analyst = h.token(Role::Analyst, "ana@insights", None).await;
    let b = Browser::start("numbers", &h).await;

    b.sign_in(&analyst).await;
    assert_eq!(
        b.path().await,
        "/console/numbers",
        "analysts land on the numbers"
    );
    b.find("svg.chart").await;
    assert_eq!(count(&b, "svg.chart").await, 4, "four charts");
    for id in [
        "chart-daily",
        "chart-types",
        "chart-histogram",
        "chart-agreement",
    ] {
        assert!(
            b.has(&format!("svg.chart#{id}[role=img][aria-label]"))
                .await,
            "{id}"
        );
    }
    assert_eq!(b.find("#total").await.text().await.unwrap(), "8");
    assert_eq!(b.find("#corrected").await.text().await.unwrap(), "5");
    assert_eq!(b.find("#agreement").await.text().await.unwrap(), "60%");
    assert_eq!(b.find("#share-fake").await.text().await.unwrap(), "50%");

    // A bar per day and label with verdicts: the days are the UTC days the
    // rows fell on.
    let days = |label: &str| -> usize {
        seeded
            .iter()
            .filter(|s| s.label == label)
            .map(|s| Bucket::Day.start_of(s.created_at))
            .collect::<HashSet<_>>()
            .len()
    };
    assert_eq!(count(&b, "#chart-daily rect.bar-fake").await, days("fake"));
    assert_eq!(count(&b, "#chart-daily rect.bar-real").await, days("real"));
    assert_eq!(count(&b, "#chart-daily rect").await, 6);
    // Three forgery types named; bins 1, 2, 3, 4, 7, 8, 9 hold verdicts.
    assert_eq!(count(&b, "#chart-types rect.bar-type").await, 3);
    assert_eq!(count(&b, "#chart-histogram rect").await, 7);
    assert_eq!(
        count(&b, "#chart-histogram rect.bar-fake").await,
        3,
        "0.75, 0.81, 0.92 and 0.97"
    );
    assert!(b.has("#chart-histogram line.threshold").await);
    // Base model and ad1, each on its track, with the counts.
    assert_eq!(count(&b, "#chart-agreement rect.bar-agree").await, 2);
    assert_eq!(count(&b, "#chart-agreement rect.bar-track").await, 2);
    let agreement = b
        .js(
            "return document.querySelector('#chart-agreement').textContent",
            vec![],
        )
        .await;
    let agreement = agreement.as_str().unwrap_or_default();
    assert!(
        agreement.contains("2/3 · 67%") && agreement.contains("1/2 · 50%"),
        "{agreement}"
    );
    let tooltip = b
        .js(
            "return document.querySelector('#chart-daily rect.bar-fake title').textContent",
            vec![],
        )
        .await;
    assert!(
        tooltip.as_str().is_some_and(|t| t.contains("fake of")),
        "{tooltip}"
    );
    assert!(
        !b.has("table#adapters").await,
        "the registry is the admins'"
    );
    b.screenshot("numbers").await;

    // A window with nothing in it says so instead of drawing empty axes.
    b.goto("/console/numbers?days=7&bucket=week&tenant=nobody")
        .await;
    let empty = b
        .wait_text("p.empty[data-chart=chart-daily]", |t| !t.is_empty())
        .await;
    assert_eq!(empty, "No verdicts in this window.");
    assert_eq!(count(&b, "svg.chart").await, 0);
    assert_eq!(b.find("#total").await.text().await.unwrap(), "0");

    // The verdict page has no ask box and no correction form for analysts,
    let id = seeded[0].request_id;
    b.goto(&format!("/console/verdicts/{id}")).await;
    b.find("#verdict-label").await;
    assert!(!b.has("#ask").await, "an analyst has no ask box");
    assert!(
        !b.has("#correction").await,
        "an analyst has no correction form"
    );
    // and the API refuses a question sent with the session and its token anyway.
    let status = b
        .js_async(
            "const done = arguments[arguments.length - 1];
             fetch('/api/verdicts/' + arguments[0] + '/questions', {method: 'POST',
                 headers: {'content-type': 'application/json',
                           'x-csrf-token': document.querySelector('meta[name=csrf-token]').content},
                 body: JSON.stringify({question: 'why?'})})
               .then(r => done(r.status), e => done(String(e)));",
            vec![json!(id.to_string())],
        )
        .await;
    assert_eq!(status, json!(403), "{status}");
    let asked = h
        .env
        .count("SELECT count(*) FROM conversation_messages")
        .await;
    assert_eq!(asked, 0, "nothing was asked");
    b.close().await;
    h.stop().await;
}
