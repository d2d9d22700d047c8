//! The one place the HTTP layer stack is assembled.
//!
//! Layers, outermost first (a request passes them in this order):
//! 0. `sanitize_request_id` — drops a client `x-request-id` that is too long or not
//!    printable, so only safe ids reach logs and the upstream.
//! 1. `SetRequestIdLayer` — keeps a valid client `x-request-id`, else generates one.
//!    Sets the `x-request-id` request header that everything below reads.
//! 2. `PropagateRequestIdLayer` — copies it to the response when the answer has none
//!    (the upstream's own `x-request-id` wins when present).
//! 3. `observe` — logs and counts responses that carry a [`crate::error::ErrorKind`] but
//!    were not settled by a request ledger (rejections before routing: 401, 404, 413,
//!    bad JSON, panics). Reads the `Logged` response extension set by the proxy. Such a
//!    refusal of a request with a body also gets `Connection: close` (its body may be unread).
//! 4. `CatchPanicLayer` — a panic becomes a 500 in OpenAI's error shape; the process lives.
//! 5. `SetSensitiveRequestHeadersLayer(authorization)` — keeps keys out of any trace output.
//! 6. Routes: `/healthz`, `/readyz`, `/metrics` (unless an admin listener serves them), and
//!    the proxy fallback for `/v1/*` and lane prefixes behind `auth::require`, which sets
//!    the `ClientName` request extension read by routing.
//!
//! There is deliberately no global timeout layer: it would bound the response future but
//! not a stream. Deadlines live in the retry loop and the stream's idle timeout.

use std::any::Any;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::HeaderValue;
use http::header::{AUTHORIZATION, CONNECTION};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

use crate::error::{ErrorKind, GatewayError};
use crate::proxy::headers::{X_REQUEST_ID, valid_request_id};
use crate::proxy::{self, Logged};
use crate::state::AppState;
use crate::{auth, health};

#[derive(Clone, Copy, Default)]
struct MakeId;

impl MakeRequestId for MakeId {
    fn make_request_id<B>(&mut self, request: &http::Request<B>) -> Option<RequestId> {
        if request.headers().get(X_REQUEST_ID).is_some_and(valid_request_id) {
            return None;
        }
        let id = format!("fg-{:032x}", rand::random::<u128>());
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// A client-supplied id that fails validation is replaced rather than forwarded.
async fn sanitize_request_id(mut request: Request, next: Next) -> Response {
    if request.headers().get(X_REQUEST_ID).is_some_and(|v| !valid_request_id(v)) {
        request.headers_mut().remove(X_REQUEST_ID);
    }
    next.run(request).await
}

async fn observe(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    // Kept as cheap handles (reference counts, no copies): most requests never need them.
    let method = request.method().clone();
    let uri = request.uri().clone();
    let request_id = request.headers().get(X_REQUEST_ID).cloned();
    let sent_body = request.version() <= http::Version::HTTP_11 && has_body(request.headers());
    let mut response = next.run(request).await;
    if response.extensions().get::<Logged>().is_none() {
        if let Some(kind) = response.extensions().get::<ErrorKind>() {
            let outcome = if *kind == ErrorKind::Internal { "gateway_error" } else { "client_error" };
            state.metrics.requests.with_label_values(&["other", "none", "other", "none", outcome]).inc();
            let request_id = request_id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or_default();
            let path: String = uri.path().chars().take(256).collect();
            tracing::info!(request_id = %request_id, method = %method, path = %path, status = response.status().as_u16(), outcome, "request rejected");
        }
        // A refusal mostly comes before the body was read. hyper then drops the connection
        // after the answer without saying so, and a client that reuses it for its next
        // request races the close and gets a connection error for an innocent request.
        let status = response.status();
        if sent_body && (status.is_client_error() || status.is_server_error()) {
            response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
        }
    }
    response
}

/// Whether an HTTP/1 request carries a body (a non-zero length, or chunked).
fn has_body(headers: &http::HeaderMap) -> bool {
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || headers.get(http::header::CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0")
}

#[expect(clippy::needless_pass_by_value, reason = "the signature CatchPanicLayer::custom requires")]
fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %detail, "handler panicked");
    GatewayError::Internal(detail).into_response()
}

/// The main router: proxy plus health (and metrics unless `serve_metrics` is false).
pub fn build_router(state: AppState, serve_metrics: bool) -> Router {
    let proxied =
        Router::new().fallback(proxy::handle).layer(middleware::from_fn_with_state(state.clone(), auth::require));
    let mut router = Router::new().route("/healthz", get(health::live)).route("/readyz", get(health::ready));
    if serve_metrics {
        router = router.route("/metrics", get(health::metrics));
    }
    with_layers(router.merge(proxied), state)
}

/// Wrap `routes` in the layer stack documented at the top of this module.
fn with_layers(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn(sanitize_request_id))
                .layer(SetRequestIdLayer::x_request_id(MakeId))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(middleware::from_fn_with_state(state.clone(), observe))
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(SetSensitiveRequestHeadersLayer::new([AUTHORIZATION])),
        )
        .with_state(state)
}

/// The admin router for a separate listener: health and metrics only.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(health::metrics))
        .with_state(state)
}

#[cfg(test)]
mod tests;
