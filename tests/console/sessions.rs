//! Signing in and out, the cookie's flags, CSRF on everything that changes
//! something, and the security headers of every page.

use dfa::domain::access::Role;
use reqwest::header::{COOKIE, LOCATION};
use reqwest::StatusCode;
use serde_json::json;

use crate::browser::Browser;
use crate::harness::{Harness, Seed};
use crate::http::{client, field, set_cookie, sign_in};

#[tokio::test(flavor = "multi_thread")]
async fn signing_in_and_out_in_a_browser_and_the_old_cookie_is_dead() {
    let h = Harness::start("console_sign_out").await;
    let token = h.token(Role::Reviewer, "rita@trust-and-safety", None).await;
    let b = Browser::start("sign_out", &h).await;

    b.goto("/console/queue").await;
    let at = b.wait_path(|p| p.starts_with("/console/sign-in")).await;
    assert!(
        at.starts_with("/console/sign-in?next="),
        "unsigned visitors go to sign-in: {at}"
    );
    b.find("#token").await;
    b.screenshot("sign-in").await;

    b.sign_in(&token).await;
    assert_eq!(
        b.path().await,
        "/console/queue",
        "back where they were going"
    );
    assert_eq!(
        b.find("#who").await.text().await.unwrap(),
        "rita@trust-and-safety"
    );
    let cookie = b.session_cookie().await.expect("a session cookie");

    b.find("#sign-out").await.click().await.expect("sign out");
    assert_eq!(
        b.wait_path(|p| p == "/console/sign-in").await,
        "/console/sign-in"
    );
    assert_eq!(b.session_cookie().await, None, "the browser dropped it");

    // The copied cookie is dead server-side, for pages and the API alike.
    let http = client();
    let page = http
        .get(h.url("/console/queue"))
        .header(COOKIE, format!("dfa_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert!(page.headers()[LOCATION]
        .to_str()
        .unwrap()
        .starts_with("/console/sign-in"));
    let api = http
        .get(h.url("/api/verdicts"))
        .header(COOKIE, format!("dfa_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    b.close().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_session_cookie_is_http_only_strict_and_secure_over_tls() {
    let h = Harness::start("console_cookie").await;
    let token = h.token(Role::Analyst, "ali", None).await;
    let http = client();
    for (proxy_proto, secure) in [(None, false), (Some("https"), true)] {
        let mut get = http.get(h.url("/console/sign-in"));
        if let Some(p) = proxy_proto {
            get = get.header("x-forwarded-proto", p);
        }
        let form = get.send().await.unwrap();
        let (pre, _) = set_cookie(&form, "dfa_sign_in").expect("sign-in cookie");
        let csrf = field(&form.text().await.unwrap(), "csrf").expect("csrf");
        let mut post = http
            .post(h.url("/console/sign-in"))
            .header(COOKIE, format!("dfa_sign_in={pre}"))
            .form(&[("token", token.as_str()), ("csrf", csrf.as_str())]);
        if let Some(p) = proxy_proto {
            post = post.header("x-forwarded-proto", p);
        }
        let done = post.send().await.unwrap();
        assert_eq!(done.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            done.headers()[LOCATION],
            "/console/numbers",
            "analysts start at the numbers"
        );
        let (_, header) = set_cookie(&done, "dfa_session").expect("session cookie");
        assert!(header.contains("HttpOnly"), "{header}");
        assert!(header.contains("SameSite=Strict"), "{header}");
        assert_eq!(header.contains("Secure"), secure, "{header}");
        assert!(!header.contains("Max-Age"), "a session cookie: {header}");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_refuses_unknown_tokens_and_forms_it_did_not_serve() {
    let h = Harness::start("console_sign_in").await;
    let token = h.token(Role::Reviewer, "rex", None).await;
    let revoked = h.token(Role::Reviewer, "gone", None).await;
    sqlx::query("UPDATE api_tokens SET revoked_at = now() WHERE name = 'gone'")
        .execute(&h.env.pool)
        .await
        .unwrap();
    let http = client();
    let form = http.get(h.url("/console/sign-in")).send().await.unwrap();
    let (pre, _) = set_cookie(&form, "dfa_sign_in").unwrap();
    let csrf = field(&form.text().await.unwrap(), "csrf").unwrap();

    for bad in ["dfa_00", revoked.as_str(), ""] {
        let r = http
            .post(h.url("/console/sign-in"))
            .header(COOKIE, format!("dfa_sign_in={pre}"))
            .form(&[("token", bad), ("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "token {bad:?}");
        assert!(set_cookie(&r, "dfa_session").is_none());
        assert!(r.text().await.unwrap().contains("unknown or revoked"));
    }
    // A good token in a form this browser was not served (login CSRF).
    for (cookie, sent) in [
        (None, csrf.as_str()),
        (Some(pre.as_str()), "0".repeat(64).as_str()),
    ] {
        let mut post = http
            .post(h.url("/console/sign-in"))
            .form(&[("token", token.as_str()), ("csrf", sent)]);
        if let Some(c) = cookie {
            post = post.header(COOKIE, format!("dfa_sign_in={c}"));
        }
        let r = post.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(set_cookie(&r, "dfa_session").is_none());
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn what_a_cookie_changes_needs_the_csrf_token() {
    let h = Harness::start("console_csrf").await;
    let token = h.token(Role::Reviewer, "rosa", None).await;
    let seed = Seed::new(&"cd".repeat(32), chrono::Utc::now());
    h.seed(&seed).await;
    let s = sign_in(&h, &token).await;
    let http = client();
    let path = format!("/api/verdicts/{}/corrections", seed.request_id);
    let body = json!({"label": "real"}).to_string();

    for csrf in [None, Some("0".repeat(64)), Some(String::new())] {
        let mut post = http
            .post(h.url(&path))
            .header(COOKIE, s.cookie_header())
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(c) = &csrf {
            post = post.header("x-csrf-token", c);
        }
        let r = post.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "csrf {csrf:?}");
        let err: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(err["error"], "csrf");
    }
    // Reads need no CSRF token; the cookie is enough.
    let read = http
        .get(h.url(&format!("/api/verdicts/{}", seed.request_id)))
        .header(COOKIE, s.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);

    // Sign-out is a form: without the token the session lives on.
    let r = http
        .post(h.url("/console/sign-out"))
        .header(COOKIE, s.cookie_header())
        .form(&[("csrf", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let still = http
        .get(h.url("/console/queue"))
        .header(COOKIE, s.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), StatusCode::OK);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_console_response_carries_a_strict_content_security_policy() {
    let h = Harness::start("console_csp").await;
    let token = h.token(Role::Admin, "ada", None).await;
    let s = sign_in(&h, &token).await;
    let http = client();
    let seed = Seed::new(&"ef".repeat(32), chrono::Utc::now());
    h.seed(&seed).await;
    let verdict = format!("/console/verdicts/{}", seed.request_id);
    let missing = format!("/console/verdicts/{}", uuid::Uuid::new_v4());
    for path in [
        "/console/sign-in",
        "/console/queue",
        "/console/numbers",
        verdict.as_str(),
        missing.as_str(),
        "/console/assets/console.js",
    ] {
        let r = http
            .get(h.url(path))
            .header(COOKIE, s.cookie_header())
            .send()
            .await
            .unwrap();
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }
    h.stop().await;
}
