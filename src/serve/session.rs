//! Console sessions: a browser signs in with a token once and then holds a
//! cookie (HttpOnly, `SameSite=Strict`, `Secure` over TLS) whose sha256 names
//! a row of `console_sessions`. A cookie stands for the same `Principal` as
//! its token, so every `/api` route accepts it; a cookie-authenticated
//! request that changes anything must also send the session's CSRF token
//! (header `x-csrf-token`, or the `csrf` field of a console form).

use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use chrono::Utc;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::state::App;
use crate::domain::access::{random_hex32, Principal};
use crate::domain::sha256_hex;

/// The session cookie (path `/`: the console's scripts call `/api`).
pub const SESSION_COOKIE: &str = "dfa_session";
/// Ties the sign-in form to the browser that loaded it (before any session).
pub const SIGN_IN_COOKIE: &str = "dfa_sign_in";
/// Where the console's scripts send the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Principal,
    /// What its forms and scripts must send back.
    pub csrf: String,
    id_sha256: String,
}

impl Session {
    /// The session of the request's cookie, if it is live.
    pub async fn of(headers: &HeaderMap, app: &App) -> Result<Option<Session>, ApiError> {
        let jar = CookieJar::from_headers(headers);
        let Some(cookie) = jar.get(SESSION_COOKIE) else {
            return Ok(None);
        };
        let id_sha256 = sha256_hex(cookie.value().as_bytes());
        Ok(app.store.session(&id_sha256).await?.map(|r| Session {
            principal: r.principal,
            csrf: r.csrf,
            id_sha256,
        }))
    }

    /// Starts a session for `principal`; returns the cookie to set.
    pub async fn open(
        app: &App,
        principal: Principal,
        secure: bool,
    ) -> Result<(Session, Cookie<'static>), ApiError> {
        let secret = random_hex32();
        let id_sha256 = sha256_hex(secret.as_bytes());
        let csrf = random_hex32();
        let ttl = app.settings.console.session_ttl;
        let expires = Utc::now() + chrono::Duration::from_std(ttl).map_err(ApiError::internal)?;
        app.store
            .create_session(&id_sha256, principal.token_id, &csrf, expires)
            .await?;
        // A session cookie (no Max-Age): gone with the browser; the server
        // ends it after `console.session_ttl` anyway.
        let cookie = cookie(SESSION_COOKIE, secret, "/", secure);
        let session = Session {
            principal,
            csrf,
            id_sha256,
        };
        Ok((session, cookie))
    }

    /// Ends the session server-side: its cookie no longer works anywhere.
    pub async fn end(&self, app: &App) -> Result<(), ApiError> {
        app.store.end_session(&self.id_sha256).await?;
        Ok(())
    }

    /// Whether `presented` is this session's CSRF token.
    pub fn csrf_matches(&self, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| same_secret(&self.csrf, p))
    }

    /// 403 unless a request that changes something carries the CSRF token
    /// in its header (the console's scripts send it with every POST).
    pub fn check_header(&self, parts: &Parts) -> Result<(), ApiError> {
        if parts.method.is_safe() {
            return Ok(());
        }
        let presented = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if self.csrf_matches(presented) {
            Ok(())
        } else {
            Err(ApiError::Csrf)
        }
    }
}

/// Compares secrets in constant time.
pub fn same_secret(expected: &str, presented: &str) -> bool {
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

/// A console cookie: HttpOnly, `SameSite=Strict`, `Secure` when `secure`.
pub fn cookie(
    name: &'static str,
    value: String,
    path: &'static str,
    secure: bool,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .path(path)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .build()
}

/// A cookie that tells the browser to drop `name`.
pub fn removal(name: &'static str, path: &'static str) -> Cookie<'static> {
    let mut c = Cookie::build((name, "")).path(path).build();
    c.make_removal();
    c
}

/// Whether cookies must be `Secure`: `console.secure_cookies`, or else
/// whether the request came over TLS through a proxy.
pub fn secure_cookies(app: &App, headers: &HeaderMap) -> bool {
    app.settings.console.secure_cookies.unwrap_or_else(|| {
        headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_cookies_are_http_only_and_strict() {
        let c = cookie(SESSION_COOKIE, "abc".into(), "/", true);
        let text = c.to_string();
        assert!(text.contains("HttpOnly"), "{text}");
        assert!(text.contains("SameSite=Strict"), "{text}");
        assert!(text.contains("Secure"), "{text}");
        let plain = cookie(SESSION_COOKIE, "abc".into(), "/", false);
        assert!(!plain.to_string().contains("Secure"));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abcd", "abcd"));
        assert!(!same_secret("abcd", "abc"));
        assert!(!same_secret("abcd", "abce"));
        assert!(!same_secret("abcd", ""));
    }
}
