//! HTTP: the bedside panel, the JSON API, the server-sent event stream and `/metrics`.
//!
//! Every handler answers; none can take the daemon down. Bad JSON, an unknown phase or an
//! impossible phase change gets a 4xx with a JSON `{"error": ...}` message.
//!
//! Reading (panel, status, rules, trends, events, metrics) is open; acting (session control,
//! notes, acknowledge, audio pause) and the recorded sessions' listing and exports
//! (`export.rs`) need a nurse token when tokens are configured, and are recorded under its
//! name.
//!
//! The panel (`panel/`: one page, its script and its style) is built into the binary and
//! loads nothing from anywhere else. The event stream sends a `heartbeat` every second while
//! the engine runs; a panel that misses them shows MONITOR OFFLINE.

mod export;
mod serve;

pub use serve::serve;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::future;
use futures_util::stream::{self, Stream, StreamExt};
use prometheus::Registry;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::{BroadcastStream, IntervalStream};

use crate::config::NurseToken;
use crate::engine::{AlarmId, CommandError, EngineHandle};
use crate::events::{AlarmView, Published, RulesView, StatusView};
use crate::vitals::Phase;

/// Largest request body accepted: session commands and notes are small.
const MAX_BODY_BYTES: usize = 16 * 1024;
/// How long a request body may take to arrive once its head has (a slow-body client holds a
/// connection no longer than this).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the event stream says the daemon is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Event streams open at once (a panel holds one; 50 cost the daemon under 2 MiB, see
/// BENCHMARKS.md); one more is refused with a 503.
pub const MAX_EVENT_STREAMS: usize = 100;

/// The panel's files, built into the binary.
const PANEL_HTML: &str = include_str!("panel/index.html");
const PANEL_JS: &str = include_str!("panel/panel.js");
const PANEL_CSS: &str = include_str!("panel/panel.css");
/// The panel loads nothing but its own files and talks only to this daemon.
const PANEL_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

#[derive(Clone)]
pub struct AppState {
    pub engine: EngineHandle,
    pub registry: Registry,
    pub tokens: Arc<Vec<NurseToken>>,
    /// The alarm rules as the panel reads them (fixed for the daemon's life).
    pub rules: Arc<RulesView>,
    /// The session database, which exports read (read-only, beside the daemon's writer).
    pub database: Arc<std::path::PathBuf>,
    /// One permit per open event stream, [`MAX_EVENT_STREAMS`] in all.
    pub event_streams: Arc<tokio::sync::Semaphore>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/panel.js", get(panel_js))
        .route("/panel.css", get(panel_css))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status))
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/trends", get(trends))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/session", post(start_session))
        .route("/api/v1/session/phase", post(set_phase))
        .route("/api/v1/session/note", post(add_note))
        .route("/api/v1/events", get(events))
        .route("/api/v1/alarms/audio-pause", post(audio_pause_all))
        .route("/api/v1/alarms/{id}/acknowledge", post(acknowledge))
        .route("/api/v1/alarms/{id}/audio-pause", post(audio_pause))
        .route("/api/v1/sessions", get(export::list))
        .route("/api/v1/sessions/{id}/export", get(export::export))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// An API error: a status code and a message, sent as `{"error": message}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        let status = match error {
            CommandError::Invalid(_) => StatusCode::BAD_REQUEST,
            CommandError::Conflict(_) => StatusCode::CONFLICT,
            CommandError::NotFound(_) => StatusCode::NOT_FOUND,
            CommandError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError(status, error.to_string())
    }
}

/// `Json<T>` whose rejections are JSON errors saying what was wrong with the body.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        // A declared length over the limit is refused before waiting for any of the body.
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
            return Err(ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is over {MAX_BODY_BYTES} bytes"),
            ));
        }
        let read = tokio::time::timeout(BODY_READ_TIMEOUT, Json::<T>::from_request(request, state));
        let Ok(parsed) = read.await else {
            return Err(ApiError(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s",
                    BODY_READ_TIMEOUT.as_secs()
                ),
            ));
        };
        match parsed {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => {
                let status = match &rejection {
                    JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    JsonRejection::BytesRejection(_) => StatusCode::PAYLOAD_TOO_LARGE,
                    _ => StatusCode::BAD_REQUEST,
                };
                Err(ApiError(status, rejection.body_text()))
            }
        }
    }
}

/// Every answer the API gives is JSON, an unknown path's included.
async fn not_found(uri: axum::http::Uri) -> ApiError {
    // The path is the client's own, but keep an answer to a huge one small.
    let path: String = uri.path().chars().take(100).collect();
    ApiError(StatusCode::NOT_FOUND, format!("no such endpoint: {path}"))
}

async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed here"),
    )
}

async fn index() -> Response {
    let mut response = Html(PANEL_HTML).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PANEL_CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Revalidated each load, so a panel never runs a script older than its daemon.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn panel_js() -> Response {
    asset("text/javascript; charset=utf-8", PANEL_JS)
}

async fn panel_css() -> Response {
    asset("text/css; charset=utf-8", PANEL_CSS)
}

async fn metrics(State(state): State<AppState>) -> Response {
    match crate::metrics::exposition(&state.registry) {
        Ok((body, content_type)) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(error) => ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {error}"),
        )
        .into_response(),
    }
}

/// The status, and whether acting needs a nurse token (public, so that a panel knows
/// whether to ask for one).
#[derive(Serialize)]
struct StatusResponse {
    #[serde(flatten)]
    status: StatusView,
    tokens_required: bool,
}

async fn status_response(state: &AppState) -> Result<StatusResponse, ApiError> {
    Ok(StatusResponse {
        status: state.engine.status().await?,
        tokens_required: !state.tokens.is_empty(),
    })
}

async fn status(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(status_response(&state).await?).into_response())
}

async fn rules(State(state): State<AppState>) -> Json<Arc<RulesView>> {
    Json(state.rules.clone())
}

async fn trends(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(state.engine.trends().await?).into_response())
}

/// Who the request's nurse token names (`local` when no tokens are configured): 401 without
/// a token, 403 with an unknown one. The panel checks a token with it before keeping it.
async fn whoami(State(state): State<AppState>, Nurse(name): Nurse) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "name": name,
        "tokens_required": !state.tokens.is_empty(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddNote {
    text: String,
}

async fn add_note(
    State(state): State<AppState>,
    Nurse(by): Nurse,
    ApiJson(body): ApiJson<AddNote>,
) -> Result<Response, ApiError> {
    let event = state.engine.note(body.text, by).await?;
    Ok((StatusCode::CREATED, Json(event)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartSession {
    /// Pseudonymous session id (letters, digits, `-`, `_`).
    id: String,
}

async fn start_session(
    State(state): State<AppState>,
    Nurse(by): Nurse,
    ApiJson(body): ApiJson<StartSession>,
) -> Result<Response, ApiError> {
    let session = state.engine.start_session(body.id, by).await?;
    Ok((StatusCode::CREATED, Json(session)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPhase {
    phase: Phase,
}

async fn set_phase(
    State(state): State<AppState>,
    Nurse(by): Nurse,
    ApiJson(body): ApiJson<SetPhase>,
) -> Result<Response, ApiError> {
    Ok(Json(state.engine.set_phase(body.phase, by).await?).into_response())
}

/// The alarms an action left active (an acknowledged latched alarm ends: none).
fn alarms_response(alarms: Vec<AlarmView>) -> Response {
    Json(serde_json::json!({ "alarms": alarms })).into_response()
}

fn alarm_id(id: &str) -> Result<AlarmId, ApiError> {
    id.parse().map(AlarmId).map_err(|_| {
        // Quote a little of it: the answer to a 10 kB path need not be 10 kB.
        let quoted: String = id.chars().take(40).collect();
        let more = if quoted.len() < id.len() { "…" } else { "" };
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("`{quoted}{more}` is not an alarm id"),
        )
    })
}

async fn acknowledge(
    State(state): State<AppState>,
    Nurse(by): Nurse,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let alarms = state.engine.acknowledge(alarm_id(&id)?, by).await?;
    Ok(alarms_response(alarms))
}

async fn audio_pause(
    State(state): State<AppState>,
    Nurse(by): Nurse,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let alarms = state.engine.audio_pause(Some(alarm_id(&id)?), by).await?;
    Ok(alarms_response(alarms))
}

async fn audio_pause_all(
    State(state): State<AppState>,
    Nurse(by): Nurse,
) -> Result<Response, ApiError> {
    let alarms = state.engine.audio_pause(None, by).await?;
    Ok(alarms_response(alarms))
}

/// Who is acting: the name of the nurse token the request carries (`local` when no tokens
/// are configured, which the daemon allows only on loopback).
pub struct Nurse(pub String);

impl FromRequestParts<AppState> for Nurse {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if state.tokens.is_empty() {
            return Ok(Nurse("local".to_string()));
        }
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .filter(|token| !token.is_empty())
            .ok_or_else(|| {
                ApiError(
                    StatusCode::UNAUTHORIZED,
                    "this action needs a nurse token: send `Authorization: Bearer <token>`".into(),
                )
            })?;
        // Compare with every token, whatever matches first, so timing does not tell which
        // (or how much of one) matched.
        let mut found = None;
        for token in state.tokens.iter() {
            if constant_time_eq(token.token.as_bytes(), presented.as_bytes()) && found.is_none() {
                found = Some(token.name.clone());
            }
        }
        found
            .map(Nurse)
            .ok_or_else(|| ApiError(StatusCode::FORBIDDEN, "unknown nurse token".into()))
    }
}

/// Equality whose time depends only on the lengths, not on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = a.len() ^ b.len();
    for index in 0..a.len().max(b.len()) {
        let x = a.get(index).copied().unwrap_or(0);
        let y = b.get(index).copied().unwrap_or(0);
        difference |= usize::from(x ^ y);
    }
    difference == 0
}

/// Server-sent events: a `status` snapshot first, then every reading, alarm transition,
/// link change, session change and note as it happens, and a `heartbeat` every second while
/// the engine runs. A client too slow to keep up gets a `lagged` event saying how many events
/// it missed, and should re-read the status.
async fn events(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let slot = state
        .event_streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "too many event streams are open ({MAX_EVENT_STREAMS} at once); close a panel or try again shortly"
                ),
            )
        })?;
    // Subscribe before the snapshot, so nothing falls between the two.
    let receiver = state.engine.subscribe();
    let snapshot = status_response(&state).await?;
    let first = SseEvent::default()
        .event("status")
        .json_data(&snapshot)
        .unwrap_or_else(|e| SseEvent::default().event("error").data(e.to_string()));
    let live = BroadcastStream::new(receiver).map(|item| {
        Ok(match item {
            Ok(event) => sse_event(&event),
            Err(BroadcastStreamRecvError::Lagged(missed)) => SseEvent::default()
                .event("lagged")
                .data(format!("{{\"missed\":{missed}}}")),
        })
    });
    let stream = stream::once(async move { Ok(first) })
        .chain(stream::select(live, heartbeats(state.engine.clone())))
        // The stream holds its slot until the client goes.
        .map(move |event| {
            let _held = &slot;
            event
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(5))))
}

/// A `heartbeat` event every second (the first at once) while the engine task runs; nothing
/// while it is stalled, so that a panel shows MONITOR OFFLINE rather than stale calm.
fn heartbeats(engine: EngineHandle) -> impl Stream<Item = Result<SseEvent, Infallible>> {
    let mut interval = tokio::time::interval(HEARTBEAT);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    IntervalStream::new(interval).filter_map(move |_| {
        future::ready(engine.heartbeat().map(|beat| {
            Ok(SseEvent::default()
                .event("heartbeat")
                .json_data(&beat)
                .unwrap_or_else(|e| SseEvent::default().event("error").data(e.to_string())))
        }))
    })
}

fn sse_event(event: &Published) -> SseEvent {
    match event.json() {
        Ok(json) => SseEvent::default().event(event.name()).data(json),
        Err(why) => SseEvent::default().event("error").data(why),
    }
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"secret-token-123", b"secret-token-123"));
        assert!(!constant_time_eq(b"secret-token-123", b"secret-token-124"));
        assert!(!constant_time_eq(b"secret-token-123", b"secret-token-12"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    /// What the nurse-token check relies on, beyond the obvious: a difference anywhere (first
    /// byte, last byte, one bit) and any length difference (a prefix either way, trailing
    /// zero bytes, which the loop pads with) make tokens unequal. Timing is not measured here:
    /// the function has no early return, and its loop runs over the longer length whatever
    /// the bytes.
    #[test]
    fn constant_time_eq_refuses_every_near_miss() {
        let token = b"ward-a-station-token-0001";
        assert!(constant_time_eq(token, b"ward-a-station-token-0001"));
        let mut near_misses: Vec<Vec<u8>> = Vec::new();
        for index in [0, token.len() / 2, token.len() - 1] {
            for bit in [0x01, 0x80] {
                let mut flipped = token.to_vec();
                flipped[index] ^= bit;
                near_misses.push(flipped);
            }
        }
        near_misses.push(token[..token.len() - 1].to_vec());
        near_misses.push(token[1..].to_vec());
        near_misses.push([&token[..], b"x"].concat());
        near_misses.push([&token[..], &[0u8]].concat());
        near_misses.push([&token[..], &token[..]].concat());
        near_misses.push(token.to_ascii_uppercase());
        near_misses.push(Vec::new());
        for miss in &near_misses {
            assert!(
                !constant_time_eq(token, miss) && !constant_time_eq(miss, token),
                "{:?}",
                String::from_utf8_lossy(miss)
            );
        }
        // Zero bytes against nothing: only the length tells them apart.
        assert!(!constant_time_eq(&[0, 0], &[]));
        assert!(!constant_time_eq(&[0], &[0, 0]));
    }
}
