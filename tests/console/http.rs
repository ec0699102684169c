//! The console over plain HTTP (no browser): sign in as a browser would,
//! and send requests with the session cookie.
#![allow(dead_code)]

use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::{redirect, Response};

use crate::harness::Harness;

/// A client that does not follow redirects (tests look at them).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .expect("client")
}

/// The `name=value` of cookie `name` among a response's Set-Cookie headers,
/// and the whole header.
pub fn set_cookie(r: &Response, name: &str) -> Option<(String, String)> {
    r.headers().get_all(SET_COOKIE).iter().find_map(|v| {
        let text = v.to_str().ok()?;
        let pair = text.split(';').next()?.trim();
        let (n, value) = pair.split_once('=')?;
        (n == name).then(|| (value.to_string(), text.to_string()))
    })
}

/// The value of `<… name="NAME" value="…">` or `<meta name="NAME" content="…">`.
pub fn field(html: &str, name: &str) -> Option<String> {
    for attr in ["value=\"", "content=\""] {
        let needle = format!("name=\"{name}\" {attr}");
        if let Some(i) = html.find(&needle) {
            let rest = &html[i + needle.len()..];
            return rest.split('"').next().map(str::to_string);
        }
    }
    None
}

/// A signed-in session over HTTP.
pub struct HttpSession {
    pub cookie: String,
    pub csrf: String,
}

impl HttpSession {
    pub fn cookie_header(&self) -> String {
        format!("dfa_session={}", self.cookie)
    }
}

/// Signs in with `token` as the sign-in form does.
pub async fn sign_in(h: &Harness, token: &str) -> HttpSession {
    let http = client();
    let form = http
        .get(h.url("/console/sign-in"))
        .send()
        .await
        .expect("sign-in page");
    let (sign_in_cookie, _) = set_cookie(&form, "dfa_sign_in").expect("sign-in cookie");
    let html = form.text().await.expect("html");
    let csrf = field(&html, "csrf").expect("csrf field");
    let done = http
        .post(h.url("/console/sign-in"))
        .header(COOKIE, format!("dfa_sign_in={sign_in_cookie}"))
        .form(&[("token", token), ("csrf", csrf.as_str())])
        .send()
        .await
        .expect("sign in");
    assert_eq!(
        done.status(),
        reqwest::StatusCode::SEE_OTHER,
        "sign-in redirects"
    );
    let (cookie, _) = set_cookie(&done, "dfa_session").expect("session cookie");
    let page = http
        .get(h.url("/console/queue"))
        .header(COOKIE, format!("dfa_session={cookie}"))
        .send()
        .await
        .expect("queue page");
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    let csrf = field(&page.text().await.expect("html"), "csrf-token").expect("csrf meta");
    HttpSession { cookie, csrf }
}
