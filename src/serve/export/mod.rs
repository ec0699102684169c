//! `GET /api/export?format=csv|jsonl&<filters>` (`Permission::Export`):
//! every verdict the filters of `/api/verdicts` match, newest first, as CSV
//! (RFC 4180, with a header) or JSON lines (the list's items). Rows stream
//! from Postgres through a bounded channel into the response body, so
//! memory stays constant whatever the count; a client that goes away stops
//! the query.

mod csv;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::SecondsFormat;
use futures::stream::{self, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::filters::{parse_split, FilterParams};
use super::state::App;
use super::verdicts::VerdictItem;
use crate::domain::access::Permission;
use crate::store::{StoreError, VerdictRow};

pub use csv::push_record;

/// Rows between Postgres and the response body: the export's memory.
const ROWS_IN_FLIGHT: usize = 1024;
/// Rows gathered into one body chunk at most (those already there).
const ROWS_PER_CHUNK: usize = 256;

pub fn routes() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::new().routes(routes!(export))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Csv,
    Jsonl,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `csv` (default; RFC 4180 with a header line) or `jsonl` (one JSON
    /// object per line, as the items of `/api/verdicts`).
    #[param(value_type = Option<String>)]
    pub format: Option<Format>,
}

/// The CSV columns, in order; empty fields are nulls (a `no_face`
/// verdict's label and p_fake, a `face_count` made without detection).
pub const CSV_COLUMNS: [&str; 15] = [
    "request_id",
    "created_at",
    "tenant",
    "status",
    "label",
    "p_fake",
    "forgery_type",
    "face_count",
    "adapter_id",
    "image_sha256",
    "corrected",
    "correction_label",
    "correction_forgery_type",
    "disagreement",
    "explanation",
];

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8; header=present",
            Format::Jsonl => "application/x-ndjson",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }

    /// What comes before the rows.
    fn head(self) -> String {
        let mut out = String::new();
        if self == Format::Csv {
            push_record(&mut out, CSV_COLUMNS);
        }
        out
    }

    /// Appends one row.
    fn push_row(self, out: &mut String, row: VerdictRow) {
        let item = VerdictItem::from(row);
        match self {
            Format::Jsonl => {
                // A struct of strings, numbers and booleans always serialises.
                out.push_str(&serde_json::to_string(&item).unwrap_or_default());
                out.push('\n');
            }
            Format::Csv => {
                let opt = |o: &Option<String>| o.clone().unwrap_or_default();
                let fields = [
                    item.request_id.to_string(),
                    item.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                    opt(&item.tenant),
                    item.status.clone(),
                    opt(&item.label),
                    item.p_fake.map(|p| p.to_string()).unwrap_or_default(),
                    opt(&item.forgery_type),
                    item.face_count.map(|n| n.to_string()).unwrap_or_default(),
                    opt(&item.adapter_id),
                    item.image_sha256.clone(),
                    item.corrected.to_string(),
                    opt(&item.correction_label),
                    opt(&item.correction_forgery_type),
                    item.disagreement.to_string(),
                    opt(&item.explanation),
                ];
                push_record(out, fields.iter().map(String::as_str));
            }
        }
    }
}

/// Every matching verdict, streamed.
#[utoipa::path(get, path = "/api/export", tag = "analysis",
    params(ExportParams, FilterParams),
    responses(
        (status = 200, description = "CSV or JSON lines, streamed", content_type = "text/csv", body = String),
        (status = 400, body = ErrorBody, description = "a bad parameter, named in `field`"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn export(
    State(app): State<Arc<App>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Permission::Export)?;
    let (filter, params): (FilterParams, ExportParams) =
        parse_split(query.as_deref().unwrap_or_default(), &["format"])?;
    let filter = filter.check()?;
    let format = params.format.unwrap_or_default();
    let head = Bytes::from(format.head());
    let body = match filter.within(caller.tenant()) {
        None => Body::from(head),
        Some(filter) => {
            let (tx, rx) = mpsc::channel(ROWS_IN_FLIGHT);
            let store = app.store.clone();
            tokio::spawn(async move { store.send_verdicts(&filter, tx).await });
            let mut rows = ReceiverStream::new(rx);
            // The first row (or the end) before the status line: a query
            // that fails at once is an error answer, not a cut-off body.
            let first = match rows.next().await {
                Some(Err(e)) => return Err(e.into()),
                first => first,
            };
            let rest = rows
                .ready_chunks(ROWS_PER_CHUNK)
                .map(move |chunk| encode(format, chunk));
            let mut opening = format.head();
            if let Some(Ok(row)) = first {
                format.push_row(&mut opening, row);
            }
            let opening = stream::once(async move { Ok(Bytes::from(opening)) });
            Body::from_stream(opening.chain(rest))
        }
    };
    let disposition = format!("attachment; filename=\"verdicts.{}\"", format.extension());
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// Rows into one body chunk. A failure mid-way ends the body with an
/// error, so the client sees a cut-off transfer, never a short file that
/// looks whole.
fn encode(
    format: Format,
    chunk: Vec<Result<VerdictRow, StoreError>>,
) -> Result<Bytes, std::io::Error> {
    let mut out = String::with_capacity(chunk.len() * 256);
    for row in chunk {
        match row {
            Ok(r) => format.push_row(&mut out, r),
            Err(e) => {
                tracing::warn!(error = %e, "export cut off by a database error");
                return Err(std::io::Error::other("export cut off by a database error"));
            }
        }
    }
    Ok(Bytes::from(out))
}
