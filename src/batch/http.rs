//! Dispatch of `/files` and `/batches` requests under a lane prefix to their handlers,
//! each answering JSON (or a file's raw bytes) or an error in OpenAI's envelope.

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode, header};
use serde_json::Value;

use super::caller::caller;
use super::{api, files};
use crate::config::Config;
use crate::error::GatewayError;
use crate::state::AppState;

/// Whether flexgate serves this path itself: `/files` or `/batches` (and below) under a
/// lane prefix such as `/flex/v1`. Under `/v1` they are forwarded like any other path.
pub fn is_batch_path(config: &Config, path: &str) -> bool {
    rest(config, path).is_some()
}

/// The path after the lane prefix, e.g. `/batches/batch_1/cancel`.
fn rest<'a>(config: &Config, path: &'a str) -> Option<&'a str> {
    config.classes.iter().filter_map(|c| c.path_prefix.as_deref()).find_map(|prefix| {
        let rest = path.strip_prefix(prefix)?;
        let first = rest.split('/').nth(1)?;
        (matches!(first, "files" | "batches") && rest.starts_with('/')).then_some(rest)
    })
}

/// Serve one files or batches request.
pub async fn handle(state: AppState, request: Request) -> Response {
    answer(&state, request).await.unwrap_or_else(IntoResponse::into_response)
}

async fn answer(state: &AppState, request: Request) -> Result<Response, GatewayError> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let not_found = || GatewayError::NotFound { method: method.to_string(), path: path.chars().take(256).collect() };
    let rest = rest(&state.config, &path).ok_or_else(not_found)?;
    let caller = caller(state, request.headers())?;
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').skip(1).collect();
    let query = request.uri().query().unwrap_or_default().to_owned();
    match (&method, segments.as_slice()) {
        (&Method::POST, ["files"]) => files::upload(state, &caller, request).await.map(json),
        (&Method::GET, ["files"]) => files::list(state, &caller, &query).await.map(json),
        (&Method::GET, ["files", id]) => files::retrieve(state, &caller, id).await.map(|f| json(f.to_json())),
        (&Method::DELETE, ["files", id]) => files::delete(state, &caller, id).await.map(json),
        (&Method::GET, ["files", id, "content"]) => files::content(state, &caller, id).await,
        (&Method::POST, ["batches"]) => {
            let body = read_json(state, request).await?;
            api::create(state, &caller, &body).await.map(json)
        }
        (&Method::GET, ["batches"]) => api::list(state, &caller, &query).await.map(json),
        (&Method::GET, ["batches", id]) => api::retrieve(state, &caller, id).await.map(json),
        (&Method::POST, ["batches", id, "cancel"]) => api::cancel(state, &caller, id).await.map(json),
        _ => Err(not_found()),
    }
}

#[expect(clippy::needless_pass_by_value, reason = "handlers hand over the value they built")]
fn json(value: Value) -> Response {
    let mut response = Response::new(Body::from(value.to_string()));
    response.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    *response.status_mut() = StatusCode::OK;
    response
}

/// A small JSON request body (a batch create), bounded like a proxied one.
async fn read_json(state: &AppState, request: Request) -> Result<Value, GatewayError> {
    let limit = state.config.server.max_body.min(1 << 20);
    let bytes = http_body_util::BodyExt::collect(http_body_util::Limited::new(request.into_body(), limit))
        .await
        .map_err(|_| GatewayError::BodyTooLarge { limit })?
        .to_bytes();
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| GatewayError::InvalidJson(e.to_string()))?;
    if value.is_object() { Ok(value) } else { Err(GatewayError::InvalidJson("the body must be a JSON object".into())) }
}

/// Map a store failure to the 500 the client sees; the cause is logged, not shown.
pub fn internal(error: impl std::fmt::Display) -> GatewayError {
    tracing::error!(error = %error, "store call failed");
    GatewayError::Internal("store".into())
}
