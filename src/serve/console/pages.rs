//! Rendering: the embedded templates (every value HTML-escaped), the
//! signed-in `Viewer` every page takes, and errors as pages (a lapsed or
//! missing session goes to sign-in rather than to a JSON 401).

use std::sync::{Arc, LazyLock};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use minijinja::{context, AutoEscape, Environment, UndefinedBehavior, Value};

use super::super::auth::Caller;
use super::super::error::ApiError;
use super::super::session::Session;
use super::super::state::App;
use crate::domain::access::{Permission, Principal};
use crate::store::StoreError;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("sign_in.html", include_str!("templates/sign_in.html")),
    ("error.html", include_str!("templates/error.html")),
    ("queue.html", include_str!("templates/queue.html")),
    ("verdict.html", include_str!("templates/verdict.html")),
    ("numbers.html", include_str!("templates/numbers.html")),
];

static ENV: LazyLock<Environment<'static>> = LazyLock::new(environment);

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Every template is HTML: model output, metadata and notes are
    // untrusted, so nothing reaches a page unescaped.
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.add_filter("p2", |v: f64| format!("{v:.2}"));
    env.add_filter("pct", |v: f64| format!("{:.0}%", v * 100.0));
    env.add_filter("ago", |t: String| ago(&t, Utc::now()));
    for (name, source) in TEMPLATES {
        // Embedded at build time; `templates_parse` below keeps them valid.
        if let Err(e) = env.add_template(name, source) {
            panic!("console template {name} does not parse: {e:#}");
        }
    }
    env
}

/// "3 min ago" for an RFC 3339 time; the time itself when unparsable.
fn ago(rfc3339: &str, now: DateTime<Utc>) -> String {
    let Ok(t) = rfc3339.parse::<DateTime<Utc>>() else {
        return rfc3339.to_string();
    };
    let s = (now - t).num_seconds().max(0);
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// Renders `template` with `ctx`, the viewer and the CSRF token.
pub fn page(
    viewer: &Viewer,
    template: &str,
    nav: &str,
    ctx: Value,
) -> Result<Html<String>, ConsoleError> {
    render(
        template,
        context! { viewer => viewer.context(), csrf => viewer.session.csrf, nav, ..ctx },
    )
}

/// Renders `template` with exactly `ctx` (pages without a session).
pub fn render(template: &str, ctx: Value) -> Result<Html<String>, ConsoleError> {
    let t = ENV
        .get_template(template)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("template {template}: {e:#}")))?;
    t.render(ctx)
        .map(Html)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("rendering {template}: {e:#}")).into())
}

/// The signed-in browser a page is rendered for. Without a live session,
/// a page redirects to sign-in (and back here afterwards).
pub struct Viewer {
    pub session: Session,
}

impl Viewer {
    pub fn principal(&self) -> &Principal {
        &self.session.principal
    }

    /// The API's caller for the same principal: pages apply the API's
    /// checks (roles, tenants) by calling the same code.
    pub fn caller(&self) -> Caller {
        Caller(self.session.principal.clone())
    }

    pub fn may(&self, p: Permission) -> bool {
        self.session.principal.may(p)
    }

    /// 403 unless a console form sent this session's CSRF token.
    pub fn check_form(&self, csrf: Option<&str>) -> Result<(), ConsoleError> {
        if self.session.csrf_matches(csrf) {
            Ok(())
        } else {
            Err(ApiError::Csrf.into())
        }
    }

    fn context(&self) -> Value {
        let p = &self.session.principal;
        context! {
            name => p.name,
            role => p.role.as_str(),
            tenant => p.tenant,
            can_ask => p.may(Permission::Ask),
            can_correct => p.may(Permission::Correct),
            can_stats => p.may(Permission::Stats),
            can_adapters => p.may(Permission::Adapters),
        }
    }
}

impl FromRequestParts<Arc<App>> for Viewer {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ConsoleError> {
        match Session::of(&parts.headers, app).await? {
            Some(session) => Ok(Viewer { session }),
            None => Err(ConsoleError::SignIn {
                next: parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default(),
            }),
        }
    }
}

/// What a console page answers instead of itself.
#[derive(Debug)]
pub enum ConsoleError {
    /// No live session: to sign-in, then back to `next`.
    SignIn {
        next: String,
    },
    Api(ApiError),
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        ConsoleError::Api(e)
    }
}

impl From<StoreError> for ConsoleError {
    fn from(e: StoreError) -> Self {
        ConsoleError::Api(e.into())
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let e = match self {
            ConsoleError::SignIn { next } => return to_sign_in(&next),
            ConsoleError::Api(ApiError::Unauthorized) => return to_sign_in(""),
            ConsoleError::Api(e) => e,
        };
        match &e {
            ApiError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "console page failed")
            }
            ApiError::Unavailable(m) => {
                tracing::warn!(message = %m, "console dependency unavailable")
            }
            _ => {}
        }
        let status = e.status();
        let ctx =
            context! { status => status.as_u16(), kind => e.kind(), message => e.to_string() };
        match render("error.html", ctx) {
            Ok(html) => (status, html).into_response(),
            Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response(),
        }
    }
}

fn to_sign_in(next: &str) -> Response {
    if next.is_empty() {
        return Redirect::to("/console/sign-in").into_response();
    }
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("next", next)
        .finish();
    Redirect::to(&format!("/console/sign-in?{q}")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse() {
        for (name, _) in TEMPLATES {
            assert!(ENV.get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn untrusted_text_is_escaped() {
        let html = render(
            "error.html",
            context! { status => 400, kind => "x", message => "<img src=x onerror=alert(1)>" },
        )
        .expect("renders")
        .0;
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
    }

    #[test]
    fn ages_read_at_a_glance() {
        let now: DateTime<Utc> = "2026-01-02T00:00:00Z".parse().unwrap();
        assert_eq!(ago("2026-01-01T23:59:30Z", now), "30 s ago");
        assert_eq!(ago("2026-01-01T23:00:00Z", now), "1 h ago");
        assert_eq!(ago("2025-12-30T00:00:00Z", now), "3 d ago");
        assert_eq!(ago("garbage", now), "garbage");
    }
}
