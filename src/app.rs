//! The one place the HTTP layer stack is assembled.
//!
//! Layers, outermost first (a request passes them in this order):
//! 1. [`front::FrontLayer`] — the request id: a client `x-request-id` that is short and
//!    printable is kept, anything else is replaced by a generated `fg-…` id, set as the
//!    request header everything below reads, and copied to the response when the answer
//!    has none (the upstream's own `x-request-id` wins). It also logs and counts
//!    responses that carry a [`crate::error::ErrorKind`] but were not settled by a request
//!    ledger (rejections before routing: 401, 404, 413, bad JSON, panics), and gives such a
//!    refusal of a request with a body `Connection: close` (its body may be unread).
//! 2. `CatchPanicLayer` — a panic becomes a 500 in OpenAI's error shape; the process lives.
//! 3. `SetSensitiveRequestHeadersLayer(authorization)` — keeps keys out of any trace output.
//! 4. Routes: `/healthz`, `/readyz`, `/metrics` (unless an admin listener serves them), and
//!    the proxy fallback for `/v1/*` and lane prefixes, whose handler authenticates first
//!    (`auth::client`: managed-mode gateway keys).
//!
//! No layer boxes or clones the service stack per request: `from_fn` middleware would,
//! which cost ten allocations per request before this stack was flattened. The layers
//! wrap the router from outside (not through `Router::layer`, which adds a boxed route
//! future per request that a held request keeps for its whole wait).
//!
//! There is deliberately no global timeout layer: it would bound the response future but
//! not a stream. Deadlines live in the retry loop and the stream's idle timeout.

mod front;

use std::any::Any;
use std::convert::Infallible;

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::AUTHORIZATION;
use tower::util::MapResponseLayer;
use tower::{Service, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

use crate::error::GatewayError;
use crate::state::AppState;
use crate::{health, proxy};
use front::FrontLayer;

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

/// The main app: proxy plus health (and metrics unless `serve_metrics` is false), inside
/// the layer stack.
pub fn build_router(
    state: AppState,
    serve_metrics: bool,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send + 'static> + Clone + Send + Sync + 'static
{
    let mut router = Router::new().route("/healthz", get(health::live)).route("/readyz", get(health::ready));
    if serve_metrics {
        router = router.route("/metrics", get(health::metrics));
    }
    with_layers(router.fallback_service(proxy::Proxy::new(state.clone())), state)
}

/// Wrap `routes` in the layer stack documented at the top of this module.
///
/// The layers wrap the router from outside rather than going in through `Router::layer`,
/// which would put their futures in one more boxed route future (with a `Oneshot` sized
/// for a whole request) for every request, held for as long as the request is.
fn with_layers(
    routes: Router<AppState>,
    state: AppState,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send + 'static> + Clone + Send + Sync + 'static
{
    ServiceBuilder::new()
        // The router did this conversion when it applied the layers itself.
        .layer(MapResponseLayer::new(IntoResponse::into_response))
        .layer(FrontLayer { state: state.clone() })
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(SetSensitiveRequestHeadersLayer::new([AUTHORIZATION]))
        .service(routes.with_state(state))
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
