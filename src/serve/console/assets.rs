//! The console's stylesheet and script, compiled into the binary: nothing
//! is fetched at run time and there is no build step.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Every page loads console.css and console.js; each page adds its own.
const FILES: &[(&str, &str, &str)] = &[
    ("console.css", CSS, include_str!("assets/console.css")),
    ("console.js", JS, include_str!("assets/console.js")),
    ("queue.css", CSS, include_str!("assets/queue.css")),
    ("verdict.css", CSS, include_str!("assets/verdict.css")),
    ("verdict.js", JS, include_str!("assets/verdict.js")),
    ("verdict-ask.js", JS, include_str!("assets/verdict-ask.js")),
    (
        "verdict-correct.js",
        JS,
        include_str!("assets/verdict-correct.js"),
    ),
    ("numbers.css", CSS, include_str!("assets/numbers.css")),
];

pub async fn serve(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=300"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
