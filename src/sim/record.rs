//! The sim's front door for every `/v1` (and unknown) request: buffers the body, writes
//! the request log entry, requires `Authorization: Bearer …`, hands the handler a [`Ctx`]
//! and stamps the headers `OpenAI` sends on every answer (`x-request-id` echoed or
//! generated, `openai-processing-ms`, `openai-version`, `openai-organization`).
//! Admin routes (`/_sim/*`) do not pass through here.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, HeaderName, HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use http::{HeaderMap, Method, Uri};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::Sim;
use super::errors::ApiError;
use super::log::{Outcome, ReceivedRequest};

/// Largest request body the sim buffers (uploads included).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Per-request facts handlers need, inserted as a request extension.
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    /// Sequence number of this request's log entry.
    pub seq: u64,
    /// `x-request-id` as received, if any (the fault-script key).
    pub received_id: Option<String>,
}

/// Middleware wrapping every recorded route.
pub(crate) async fn record(State(sim): State<Sim>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let (mut parts, body) = request.into_parts();
    let received_id = parts.headers.get(&REQUEST_ID).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let request_id = received_id.clone().unwrap_or_else(|| sim.inner.ids.request_id());
    let Ok(bytes) = to_bytes(body, MAX_BODY_BYTES).await else {
        return stamp(ApiError::too_large().into_response(), &request_id, started);
    };
    let seq = sim.inner.log.push(ReceivedRequest {
        method: parts.method.to_string(),
        version: format!("{:?}", parts.version),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        request_id: received_id.clone(),
        headers: header_list(&parts.headers),
        body_len: bytes.len(),
        body_sha256: hex::encode(Sha256::digest(&bytes)),
        ..ReceivedRequest::default()
    });
    let mut response = if has_bearer(&parts.headers) {
        parts.extensions.insert(Ctx { seq, received_id });
        next.run(Request::from_parts(parts, Body::from(bytes))).await
    } else {
        ApiError::missing_key().into_response()
    };
    let outcome = response.extensions_mut().remove::<Outcome>();
    sim.inner.log.finish(seq, response.status().as_u16(), outcome);
    stamp(response, &request_id, started)
}

fn header_list(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect()
}

/// A bearer key, or (as browsers must send it to the Realtime endpoint) a key in the
/// `openai-insecure-api-key.` WebSocket subprotocol.
fn has_bearer(headers: &HeaderMap) -> bool {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, key)| scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty());
    bearer
        || headers.get_all(SEC_WEBSOCKET_PROTOCOL).iter().filter_map(|v| v.to_str().ok()).any(|list| {
            list.split(',').any(|p| p.trim().strip_prefix("openai-insecure-api-key.").is_some_and(|k| !k.is_empty()))
        })
}

fn stamp(mut response: Response, request_id: &str, started: Instant) -> Response {
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, id);
    }
    let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    headers.insert(HeaderName::from_static("openai-processing-ms"), HeaderValue::from(millis));
    headers.insert(HeaderName::from_static("openai-version"), HeaderValue::from_static("2020-10-01"));
    headers.insert(HeaderName::from_static("openai-organization"), HeaderValue::from_static("org-sim"));
    response
}

/// Any path or method the sim does not serve: 404 in the `OpenAI` envelope.
pub(crate) async fn unknown(method: Method, uri: Uri) -> Response {
    ApiError::unknown_url(method.as_str(), uri.path()).into_response()
}
