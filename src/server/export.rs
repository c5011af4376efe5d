//! The recorded sessions over HTTP: `GET /api/v1/sessions` (the listing) and
//! `GET /api/v1/sessions/{id}/export?format=csv|csv-events|fhir|edf|html[&interval=S][&key=N]`
//! (one session's export, streamed as it is written).
//!
//! Both read the session database read-only (WAL lets them read beside the daemon's writer)
//! on a blocking thread. Unlike the live views, they need a nurse token when tokens are
//! configured: they hand out the whole record of every session, not the bedside's present.
//! Every export is logged with who asked for it.
//!
//! Errors: 400 for an unknown format or a bad option, 404 for a session (or key) that is not
//! recorded, 409 when several sessions share the id and no key says which. Once the body has
//! started, a failure aborts the response, so a client never takes a cut-off export for a whole
//! one.

use std::io::{self, Write};
use std::path::PathBuf;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{ApiError, AppState, Nurse};
use crate::export::{self, ExportError, Format, Options, Session};
use crate::recorder::{SessionSummary, Store, StoreError};

/// The report loads nothing and runs nothing: styles inline, charts inline SVG.
const REPORT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/// Bytes per chunk of a streamed export.
const CHUNK: usize = 64 * 1024;

impl From<ExportError> for ApiError {
    fn from(error: ExportError) -> Self {
        let status = match &error {
            ExportError::UnknownSession { .. } => StatusCode::NOT_FOUND,
            ExportError::AmbiguousSession { .. } => StatusCode::CONFLICT,
            ExportError::Invalid(_) => StatusCode::BAD_REQUEST,
            ExportError::Store(StoreError::NoSuchSession { .. }) => StatusCode::NOT_FOUND,
            ExportError::Store(_) | ExportError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, error.to_string())
    }
}

fn blocking_failed(error: tokio::task::JoinError) -> ApiError {
    ApiError(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("the export task failed: {error}"),
    )
}

/// The store, or `None` when no database exists yet (nothing recorded).
fn open(database: &std::path::Path) -> Result<Option<Store>, ExportError> {
    if !database.exists() {
        return Ok(None);
    }
    Ok(Some(Store::open_read_only(database)?))
}

/// `GET /api/v1/sessions`: every recorded session, oldest first.
pub(super) async fn list(
    State(state): State<AppState>,
    Nurse(_): Nurse,
) -> Result<Response, ApiError> {
    let database: PathBuf = state.database.as_ref().clone();
    let sessions: Vec<SessionSummary> =
        tokio::task::spawn_blocking(move || match open(&database)? {
            Some(store) => Ok::<_, ExportError>(store.sessions()?),
            None => Ok(Vec::new()),
        })
        .await
        .map_err(blocking_failed)??;
    Ok(Json(serde_json::json!({ "sessions": sessions })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportQuery {
    format: Option<String>,
    interval: Option<u32>,
    key: Option<i64>,
}

/// `GET /api/v1/sessions/{id}/export?format=...`.
pub(super) async fn export(
    State(state): State<AppState>,
    Nurse(by): Nurse,
    Path(id): Path<String>,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let format: Format = query
        .format
        .as_deref()
        .ok_or_else(|| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("say which format with ?format=: {}", Format::names()),
            )
        })?
        .parse()
        .map_err(|message| ApiError(StatusCode::BAD_REQUEST, message))?;
    if query.interval.is_some() && format != Format::Fhir {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("interval applies to the fhir format only, not to {format}"),
        ));
    }
    if query.interval == Some(0) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "interval must be at least 1 second".into(),
        ));
    }

    // Find the session first, so that a bad request gets its status before any body.
    let database: PathBuf = state.database.as_ref().clone();
    let key = query.key;
    let (store, session) = tokio::task::spawn_blocking(move || {
        let Some(store) = open(&database)? else {
            return Err(ExportError::UnknownSession {
                id,
                recorded: Vec::new(),
            });
        };
        let summary = export::find_session(&store, &id, key)?;
        let session = Session::load(&store, summary)?;
        Ok::<_, ExportError>((store, session))
    })
    .await
    .map_err(blocking_failed)??;

    let file_name = session.file_name(format);
    // The recording's key, not the session id: no identifier in the log.
    tracing::info!(
        key = session.summary.key.0,
        format = %format,
        by = %by,
        "session export requested"
    );
    let options = Options {
        interval_s: query.interval,
        generated: chrono::Utc::now(),
    };
    let (sender, receiver) = mpsc::channel::<Result<Bytes, io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut writer = ChannelWriter {
            sender: sender.clone(),
            buffer: Vec::with_capacity(CHUNK),
        };
        let result = export::export(&store, &session, format, &options, &mut writer, &mut |_| {})
            .and_then(|_| writer.flush().map_err(ExportError::from));
        if let Err(error) = result {
            tracing::warn!(key = session.summary.key.0, format = %format, "export failed: {error}");
            // Abort the response: the client sees a broken transfer, not a short file.
            let _ = sender.blocking_send(Err(io::Error::other(error.to_string())));
        }
    });

    let disposition = if format == Format::Html {
        "inline"
    } else {
        "attachment"
    };
    let mut response = Body::from_stream(ReceiverStream::new(receiver)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    // The file name is the session id (letters, digits, `-`, `_`), a time and a suffix.
    if let Ok(value) = HeaderValue::from_str(&format!("{disposition}; filename=\"{file_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if format == Format::Html {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(REPORT_CSP),
        );
    }
    Ok(response)
}

/// Sends what is written to the response body in chunks, from the blocking thread.
struct ChannelWriter {
    sender: mpsc::Sender<Result<Bytes, io::Error>>,
    buffer: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
