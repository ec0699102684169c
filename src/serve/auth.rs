//! Bearer tokens (or the console's session cookie, `session`). Every `/api`
//! route takes a `Caller`: no token, an unknown or a revoked one is 401; `Caller::require` turns a role without the
//! permission into 403; `Caller::sees` hides other tenants' verdicts, which
//! then answer 404 (never 403, so ids do not leak). Tokens never reach a log.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::Modify;

use uuid::Uuid;

use super::error::ApiError;
use super::extract::verdict_id;
use super::session::Session;
use super::state::App;
use crate::domain::access::{token_sha256, Permission, Principal};
use crate::store::DialogueBasis;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl Caller {
    /// 403 unless the caller's role grants `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.0.may(permission) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(self.0.role.as_str()))
        }
    }

    /// Whether a verdict of `tenant` exists for this caller.
    pub fn sees(&self, tenant: Option<&str>) -> bool {
        self.0.sees(tenant)
    }

    /// The tenant a query must be restricted to, if any.
    pub fn tenant(&self) -> Option<&str> {
        self.0.tenant.as_deref()
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// What a follow-up or a correction needs of the verdict at `raw` (a
    /// path segment): 404 for a malformed or unknown id and for another
    /// tenant's verdict alike.
    pub async fn visible_verdict(
        &self,
        app: &App,
        raw: &str,
    ) -> Result<(Uuid, DialogueBasis), ApiError> {
        let id = verdict_id(raw)?;
        let basis = app
            .store
            .dialogue_basis(id)
            .await?
            .filter(|b| self.sees(b.tenant.as_deref()))
            .ok_or(ApiError::NotFound("verdict"))?;
        Ok((id, basis))
    }
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        if let Some(secret) = bearer(parts) {
            let principal = app
                .store
                .principal(&token_sha256(secret))
                .await?
                .ok_or(ApiError::Unauthorized)?;
            return Ok(Caller(principal));
        }
        // The console's session cookie stands for its token, with a CSRF
        // token on whatever changes something.
        let session = Session::of(&parts.headers, app)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        session.check_header(parts)?;
        Ok(Caller(session.principal))
    }
}

/// The token of an `Authorization: Bearer …` header.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Declares the bearer scheme in the OpenAPI document.
pub struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token from `dfa tokens create`"))
                    .build(),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    fn parts(header: Option<&str>) -> Parts {
        let mut b = Request::builder();
        if let Some(h) = header {
            b = b.header(AUTHORIZATION, h);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn only_a_bearer_header_with_a_token_counts() {
        assert_eq!(bearer(&parts(Some("Bearer abc"))), Some("abc"));
        assert_eq!(bearer(&parts(Some("bearer  abc "))), Some("abc"));
        assert_eq!(bearer(&parts(Some("Basic abc"))), None);
        assert_eq!(bearer(&parts(Some("Bearer "))), None);
        assert_eq!(bearer(&parts(Some("Bearer"))), None);
        assert_eq!(bearer(&parts(None)), None);
    }
}
