//! The API's errors: one enum, one JSON shape
//! (`{"error": kind, "message": sentence, "field"?: name}`), one status each.
//! Internal failures are logged here and answered without their details.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing, unknown or revoked bearer token")]
    Unauthorized,
    #[error("your role ({0}) may not do this")]
    Forbidden(&'static str),
    /// A cookie-authenticated request without its session's CSRF token.
    #[error("missing or wrong CSRF token; reload the page")]
    Csrf,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("`{field}`: {reason}")]
    BadRequest { field: String, reason: String },
    #[error("{0}")]
    Conflict(String),
    #[error("too many questions; retry in {} s", .retry_after.as_secs().max(1))]
    TooManyRequests { retry_after: Duration },
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable kind: `unauthorized`, `forbidden`, `csrf`,
    /// `not_found`, `bad_request`, `conflict`, `rate_limited`,
    /// `unavailable`, `internal`.
    pub error: &'static str,
    pub message: String,
    /// The request field (JSON path or query parameter) at fault, for 400s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn bad(field: impl Into<String>, reason: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> ApiError {
        ApiError::Internal(e.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::Csrf => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Csrf => "csrf",
            ApiError::NotFound(_) => "not_found",
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
            ApiError::Unavailable("the database is unavailable; retry shortly".into())
        } else {
            ApiError::Internal(e.into())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "API request failed")
            }
            ApiError::Unavailable(m) => tracing::warn!(message = %m, "API dependency unavailable"),
            _ => {}
        }
        let field = match &self {
            ApiError::BadRequest { field, .. } => Some(field.clone()),
            _ => None,
        };
        let body = ErrorBody {
            error: self.kind(),
            message: self.to_string(),
            field,
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::TooManyRequests { retry_after } => {
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                    headers.insert(header::RETRY_AFTER, v);
                }
            }
            ApiError::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_round_retry_after_up() {
        let r = ApiError::TooManyRequests {
            retry_after: Duration::from_millis(1500),
        }
        .into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = ApiError::internal(anyhow::anyhow!("password=hunter2"));
        assert_eq!(e.to_string(), "internal error");
    }
}
