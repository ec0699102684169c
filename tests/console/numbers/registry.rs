//! Admins promote and roll back adapters through the page's forms.

use dfa::domain::access::Role;
use dfa::domain::adapter::AdapterOrigin;
use dfa::registry::{register, AdapterId, Registration};
use reqwest::header::{COOKIE, LOCATION};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::browser::Browser;
use crate::harness::Harness;
use crate::http::{client, sign_in, HttpSession};

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
            projector: None,
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
