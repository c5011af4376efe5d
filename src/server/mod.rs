//! HTTP: the JSON API, the server-sent event stream and `/metrics`.
//!
//! Every handler answers; none can take the daemon down. Bad JSON, an unknown phase or an
//! impossible phase change gets a 4xx with a JSON `{"error": ...}` message.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use prometheus::Registry;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::engine::{CommandError, EngineHandle};
use crate::events::Event;
use crate::vitals::Phase;

/// Largest request body accepted: session commands are tiny.
const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub engine: EngineHandle,
    pub registry: Registry,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics))
        .route("/api/v1/status", get(status))
        .route("/api/v1/session", post(start_session))
        .route("/api/v1/session/phase", post(set_phase))
        .route("/api/v1/events", get(events))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// An API error: a status code and a message, sent as `{"error": message}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        let status = match error {
            CommandError::Invalid(_) => StatusCode::BAD_REQUEST,
            CommandError::Conflict(_) => StatusCode::CONFLICT,
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
        match Json::<T>::from_request(request, state).await {
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

async fn index() -> Html<&'static str> {
    Html(include_str!("index.html"))
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

async fn status(State(state): State<AppState>) -> Result<Response, ApiError> {
    Ok(Json(state.engine.status().await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartSession {
    /// Pseudonymous session id (letters, digits, `-`, `_`).
    id: String,
}

async fn start_session(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<StartSession>,
) -> Result<Response, ApiError> {
    let session = state.engine.start_session(body.id).await?;
    Ok((StatusCode::CREATED, Json(session)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPhase {
    phase: Phase,
}

async fn set_phase(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SetPhase>,
) -> Result<Response, ApiError> {
    Ok(Json(state.engine.set_phase(body.phase).await?).into_response())
}

/// Server-sent events: a `status` snapshot first, then every reading, alarm transition,
/// link change and phase change as it happens. A client too slow to keep up gets a `lagged`
/// event saying how many events it missed, and should re-read the status.
async fn events(
    State(state): State<AppState>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    // Subscribe before the snapshot, so nothing falls between the two.
    let receiver = state.engine.subscribe();
    let snapshot = state.engine.status().await?;
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
    let stream = stream::once(async move { Ok(first) }).chain(live);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(5))))
}

fn sse_event(event: &Arc<Event>) -> SseEvent {
    SseEvent::default()
        .event(event.name())
        .json_data(event.as_ref())
        .unwrap_or_else(|e| SseEvent::default().event("error").data(e.to_string()))
}
