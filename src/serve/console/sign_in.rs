//! Sign-in with a token (`dfa tokens create`), sign-out, and where
//! `/console` leads. The sign-in form is tied to the browser that loaded it
//! by a cookie it must echo (login CSRF); sign-out needs the session's.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use axum_extra::extract::CookieJar;
use minijinja::context;
use serde::Deserialize;

use super::pages::{render, ConsoleError, Viewer};
use crate::domain::access::{random_hex32, token_sha256, Permission, Principal};
use crate::serve::error::ApiError;
use crate::serve::session::{
    cookie, removal, same_secret, secure_cookies, Session, SESSION_COOKIE, SIGN_IN_COOKIE,
};
use crate::serve::state::App;

#[derive(Debug, Default, Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: Option<String>,
}

/// A console form that changes something: just its CSRF token.
#[derive(Debug, Default, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: Option<String>,
}

/// `/console`: the viewer's first page.
pub async fn home(viewer: Viewer) -> Redirect {
    Redirect::to(&landing(viewer.principal()))
}

/// Reviewers start at the queue, analysts at the numbers.
fn landing(p: &Principal) -> String {
    if p.may(Permission::Correct) || !p.may(Permission::Stats) {
        "/console/queue".into()
    } else {
        "/console/numbers".into()
    }
}

/// The console's pages (GET) a sign-in may return to.
const RETURN_TO: [&str; 3] = ["/console/queue", "/console/verdicts/", "/console/numbers"];

/// Only a page of this console: never an absolute or protocol-relative URL
/// (an open redirect), a form's target, or anything a header cannot carry.
fn safe_next(next: Option<&str>) -> Option<&str> {
    next.filter(|n| {
        (*n == "/console" || RETURN_TO.iter().any(|p| n.starts_with(p)))
            && !n.contains('\\')
            && !n.contains("/..")
            && n.bytes().all(|b| b.is_ascii_graphic())
    })
}

pub async fn form(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    jar: CookieJar,
    Query(q): Query<NextQuery>,
) -> Result<Response, ConsoleError> {
    if let Some(s) = Session::of(&headers, &app).await? {
        let to = safe_next(q.next.as_deref()).map_or_else(|| landing(&s.principal), str::to_string);
        return Ok(Redirect::to(&to).into_response());
    }
    sign_in_page(&app, &headers, jar, q.next.as_deref(), None, StatusCode::OK)
}

/// The form, with a fresh sign-in cookie whose value it echoes.
fn sign_in_page(
    app: &App,
    headers: &HeaderMap,
    jar: CookieJar,
    next: Option<&str>,
    problem: Option<&str>,
    status: StatusCode,
) -> Result<Response, ConsoleError> {
    let csrf = random_hex32();
    let secure = secure_cookies(app, headers);
    let jar = jar.add(cookie(SIGN_IN_COOKIE, csrf.clone(), "/console", secure));
    let html = render(
        "sign_in.html",
        context! { csrf, next => safe_next(next), problem },
    )?;
    Ok((status, jar, html).into_response())
}

pub async fn submit(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    jar: CookieJar,
    Form(f): Form<SignInForm>,
) -> Result<Response, ConsoleError> {
    let echoed = jar
        .get(SIGN_IN_COOKIE)
        .is_some_and(|c| !f.csrf.is_empty() && same_secret(c.value(), &f.csrf));
    let refuse = |problem: &str, status| {
        sign_in_page(
            &app,
            &headers,
            jar.clone(),
            f.next.as_deref(),
            Some(problem),
            status,
        )
    };
    if !echoed {
        let problem = "The sign-in form expired. Paste the token again.";
        return refuse(problem, StatusCode::FORBIDDEN);
    }
    let token = f.token.trim();
    let principal = match token.is_empty() {
        true => None,
        false => app
            .store
            .principal(&token_sha256(token))
            .await
            .map_err(ApiError::from)?,
    };
    let Some(principal) = principal else {
        tracing::info!("console sign-in refused: unknown or revoked token");
        let problem = "That token is unknown or revoked.";
        return refuse(problem, StatusCode::UNAUTHORIZED);
    };
    let to = safe_next(f.next.as_deref()).map_or_else(|| landing(&principal), str::to_string);
    let name = principal.name.clone();
    // A browser holds one session: signing in again ends the one it had.
    if let Some(earlier) = Session::of(&headers, &app).await? {
        earlier.end(&app).await?;
    }
    let (_, session_cookie) =
        Session::open(&app, principal, secure_cookies(&app, &headers)).await?;
    tracing::info!(who = %name, "console sign-in");
    let jar = jar
        .remove(removal(SIGN_IN_COOKIE, "/console"))
        .add(session_cookie);
    Ok((jar, Redirect::to(&to)).into_response())
}

/// Ends the session server-side, so the cookie is dead even if copied.
pub async fn sign_out(
    State(app): State<Arc<App>>,
    viewer: Viewer,
    jar: CookieJar,
    Form(f): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    viewer.check_form(f.csrf.as_deref())?;
    viewer.session.end(&app).await?;
    tracing::info!(who = %viewer.principal().name, "console sign-out");
    let jar = jar.remove(removal(SESSION_COOKIE, "/"));
    Ok((jar, Redirect::to("/console/sign-in")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_paths_are_followed_after_sign_in() {
        assert_eq!(
            safe_next(Some("/console/queue?x=1")),
            Some("/console/queue?x=1")
        );
        assert_eq!(safe_next(Some("//evil.example/console")), None);
        assert_eq!(safe_next(Some("https://evil.example")), None);
        assert_eq!(safe_next(Some("/console\\..\\x")), None);
        assert_eq!(safe_next(Some("/console/sign-out")), None);
        assert_eq!(safe_next(Some("/console/assets/console.js")), None);
        assert_eq!(safe_next(Some("/api/verdicts")), None);
        assert_eq!(safe_next(Some("/console/queue\nSet-Cookie: x=1")), None);
        assert_eq!(safe_next(Some("/console/adapters/a/promote")), None);
        assert_eq!(safe_next(Some("/consolex")), None);
        assert_eq!(safe_next(Some("/console/queue/../sign-out")), None);
        assert_eq!(safe_next(Some("/console")), Some("/console"));
        assert_eq!(safe_next(None), None);
    }
}
