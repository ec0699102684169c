//! `GET /api/verdicts/{request_id}/image`: the stored bytes of a verdict's
//! image, typed by what they are (sniffed, not trusted from the request).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::super::auth::Caller;
use super::super::error::{ApiError, ErrorBody};
use super::super::extract::verdict_id;
use super::super::state::App;
use crate::domain::access::Permission;

/// What a response with these bytes says it holds.
pub fn content_type(bytes: &[u8]) -> &'static str {
    ::image::guess_format(bytes)
        .map(|f| f.to_mime_type())
        .unwrap_or("application/octet-stream")
}

/// The image the verdict was made from. 404 as for the verdict; 409 when
/// retention has deleted it from the image store.
#[utoipa::path(get, path = "/api/verdicts/{request_id}/image", tag = "verdicts",
    params(("request_id" = String, Path, description = "the verdict's request id (a UUID)")),
    responses(
        (status = 200, description = "the image bytes", content_type = "image/*", body = Vec<u8>),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the image is no longer stored"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn verdict_image(
    State(app): State<Arc<App>>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Permission::Read)?;
    let id = verdict_id(&raw)?;
    let sha = app
        .store
        .verdict_image_ref(id)
        .await?
        .filter(|(tenant, _)| caller.sees(tenant.as_deref()))
        .map(|(_, sha)| sha)
        .ok_or(ApiError::NotFound("verdict"))?;
    let images = app.images.clone();
    let read = tokio::task::spawn_blocking(move || images.get(&sha))
        .await
        .map_err(ApiError::internal)?;
    let bytes = match read {
        Ok(b) => b,
        Err(e) if e.source.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::Conflict(
                "the image of this verdict is no longer in the image store (image_store.retain_days)"
                    .into(),
            ))
        }
        Err(e) => return Err(ApiError::internal(e)),
    };
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(content_type(&bytes)),
        ),
        // Stored images are whatever requesters sent: never let a browser
        // guess them into something active.
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=3600"),
        ),
    ];
    Ok((headers, bytes).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_say_what_they_are() {
        assert_eq!(content_type(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(
            content_type(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]),
            "image/jpeg"
        );
        assert_eq!(
            content_type(b"<svg onload=alert(1)>"),
            "application/octet-stream"
        );
    }
}
