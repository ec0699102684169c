//! The numbers page: an analyst's charts over seeded verdicts (and no way
//! to ask or correct), the role checks, and the admins' registry forms
//! promoting and rolling back real adapters of the tiny model.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use dfa::domain::access::Role;
use dfa::domain::adapter::AdapterOrigin;
use dfa::domain::verdict_query::Bucket;
use dfa::registry::{register, AdapterId, Registration};
use fantoccini::Locator;
use reqwest::header::{COOKIE, LOCATION};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::browser::Browser;
use crate::harness::{Harness, Seed};
use crate::http::{client, sign_in, HttpSession};

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

/// Registers a copy of the tiny model's adapter `index` as candidate `id`.
async fn candidate(h: &Harness, index: usize, id: &str) {
    let dir = std::path::PathBuf::from(&h.app.settings.adapters.dir);
    std::fs::create_dir_all(&dir).expect("adapter dir");
    let staged = dir.join(format!(".staged-{id}"));
    std::fs::copy(&crate::common::tiny().adapters[index], &staged).expect("stage adapter");
    register(
        &h.app.store,
        &dir,
        staged,
        AdapterId::Given(id.into()),
        Registration {
            base_model_sha256: "ab".repeat(32),
            parent_id: None,
            origin: AdapterOrigin::Import,
            training_data: json!({}),
            hyper_parameters: json!({}),
        },
    )
    .await
    .expect("register");
}

async fn statuses(h: &Harness) -> Vec<(String, String)> {
    sqlx::query_as("SELECT id, status FROM adapters ORDER BY id")
        .fetch_all(&h.env.pool)
        .await
        .expect("adapters")
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// POSTs a console form as `s` (`csrf`: the field's value, none: absent).
async fn post_form(
    h: &Harness,
    s: &HttpSession,
    path: &str,
    csrf: Option<&str>,
) -> reqwest::Response {
    let fields: Vec<(&str, &str)> = csrf.map(|c| vec![("csrf", c)]).unwrap_or_default();
    client()
        .post(h.url(path))
        .header(COOKIE, s.cookie_header())
        .form(&fields)
        .send()
        .await
        .expect("post")
}

async fn get_page(h: &Harness, s: &HttpSession, path: &str) -> (StatusCode, String) {
    let r = client()
        .get(h.url(path))
        .header(COOKIE, s.cookie_header())
        .send()
        .await
        .expect("get");
    (r.status(), r.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread")]
async fn admins_promote_and_roll_back_through_the_forms_and_no_one_else_does() {
    let h = Harness::start("console_numbers_registry").await;
    let reviewer = sign_in(&h, &h.token(Role::Reviewer, "rita", None).await).await;
    let analyst = sign_in(&h, &h.token(Role::Analyst, "ana", None).await).await;
    let admin = sign_in(&h, &h.token(Role::Admin, "ops", None).await).await;
    candidate(&h, 0, "cand-a").await;
    candidate(&h, 1, "cand-b").await;
    let untouched = pairs(&[("cand-a", "candidate"), ("cand-b", "candidate")]);

    let (status, page) = get_page(&h, &reviewer, "/console/numbers").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "reviewers have no numbers");
    assert!(page.contains("may not"), "the error page says why: {page}");
    let (status, page) = get_page(&h, &analyst, "/console/numbers").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !page.contains("id=\"adapters\""),
        "analysts see no registry"
    );
    let (status, page) = get_page(&h, &admin, "/console/numbers").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<table id=\"adapters\">"), "{page}");
    assert_eq!(
        page.matches("class=\"promote\"").count(),
        2,
        "a form per candidate"
    );
    assert!(
        page.contains("action=\"&#x2f;console&#x2f;adapters&#x2f;cand-a&#x2f;promote\""),
        "{page}"
    );
    assert!(
        !page.contains("id=\"rollback\""),
        "nothing is active to roll back"
    );

    // Refused: another role (with its own valid token), no token, a wrong one.
    let promote_a = "/console/adapters/cand-a/promote";
    let r = post_form(&h, &analyst, promote_a, Some(&analyst.csrf)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post_form(
        &h,
        &reviewer,
        "/console/adapters/rollback",
        Some(&reviewer.csrf),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post_form(&h, &admin, promote_a, None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no csrf field");
    let r = post_form(&h, &admin, promote_a, Some(&analyst.csrf)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "another session's token");
    assert_eq!(statuses(&h).await, untouched, "nothing changed");

    // Promote a, then b over it: each back on the page with the outcome.
    let r = post_form(&h, &admin, promote_a, Some(&admin.csrf)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = r.headers()[LOCATION].to_str().unwrap().to_string();
    assert_eq!(to, "/console/numbers?done=promoted&adapter=cand-a");
    assert_eq!(
        statuses(&h).await,
        pairs(&[("cand-a", "active"), ("cand-b", "candidate")])
    );
    let (status, page) = get_page(&h, &admin, &to).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Promoted cand-a"), "{page}");
    assert!(page.contains("id=\"rollback\""));
    let r = post_form(
        &h,
        &admin,
        "/console/adapters/cand-b/promote",
        Some(&admin.csrf),
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        statuses(&h).await,
        pairs(&[("cand-a", "retired"), ("cand-b", "active")])
    );
    let api = h
        .get(
            "/api/adapters",
            Some(&h.token(Role::Admin, "api", None).await),
        )
        .await;
    assert_eq!(
        api.1["items"][0]["id"], "cand-b",
        "the API reads the same registry"
    );
    assert_eq!(api.1["items"][0]["status"], "active");

    // Rollback: without its token it is refused; with it, a is back.
    let r = post_form(&h, &admin, "/console/adapters/rollback", None).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post_form(&h, &admin, "/console/adapters/rollback", Some(&admin.csrf)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = r.headers()[LOCATION].to_str().unwrap().to_string();
    assert_eq!(
        to,
        "/console/numbers?done=rolled_back&adapter=cand-b&restored=cand-a"
    );
    assert_eq!(
        statuses(&h).await,
        pairs(&[("cand-a", "active"), ("cand-b", "retired")])
    );
    let (_, page) = get_page(&h, &admin, &to).await;
    assert!(
        page.contains("Rolled back cand-b: cand-a is active again."),
        "{page}"
    );

    // The registry's refusals are shown on the page, escaped.
    let hostile = "/console/adapters/%3Cimg%20src%3Dx%3E/promote";
    let r = post_form(&h, &admin, hostile, Some(&admin.csrf)).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let page = r.text().await.unwrap();
    assert!(page.contains("id=\"notice\""), "{page}");
    // In a browser, the button does it (the CSP lets forms post to this
    // origin only).
    let b = Browser::start("numbers_admin", &h).await;
    b.sign_in(&h.token(Role::Admin, "ops", None).await).await;
    b.goto("/console/numbers").await;
    b.find("tr[data-id=cand-b] form.promote button")
        .await
        .click()
        .await
        .expect("click");
    let at = b.wait_path(|p| p.contains("done=promoted")).await;
    assert_eq!(at, "/console/numbers?done=promoted&adapter=cand-b");
    let notice = b.wait_text("#notice", |t| !t.is_empty()).await;
    assert!(notice.starts_with("Promoted cand-b"), "{notice}");
    assert_eq!(
        statuses(&h).await,
        pairs(&[("cand-a", "retired"), ("cand-b", "active")])
    );
    assert!(b.has("form#rollback").await);
    b.js(
        "document.querySelector('#registry').scrollIntoView()",
        vec![],
    )
    .await;
    b.screenshot("numbers-admin").await;
    b.close().await;

    // A crafted link cannot claim a change of an adapter that does not exist.
    let forged = format!("/console/numbers?done=promoted&adapter={}", Uuid::new_v4());
    let (status, page) = get_page(&h, &admin, &forged).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("id=\"notice\""), "{page}");
    h.stop().await;
}
