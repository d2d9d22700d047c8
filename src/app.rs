//! The one place the HTTP layer stack is assembled.
//!
//! Layers, outermost first (a request passes them in this order):
//! 1. `MapResponseLayer(IntoResponse::into_response)` — turns the stack's response into
//!    axum's `Response` (the router did this itself when it applied the layers).
//! 2. `identify::IdentifyLayer` — the request id: a client `x-request-id` that is short
//!    and printable is kept, anything else is replaced by a generated `fg-…` id, set as
//!    the request header everything below reads, and copied to the response when the
//!    answer has none (the upstream's own `x-request-id` wins). It also logs and counts
//!    responses that carry a [`crate::error::ErrorKind`] but were not settled by a request
//!    ledger (rejections before routing: 401, 404, 413, bad JSON, panics), and gives such a
//!    refusal of a request with a body `Connection: close` (its body may be unread).
//! 3. `CatchPanicLayer` — a panic becomes a 500 in OpenAI's error shape; the process lives.
//! 4. `SetSensitiveRequestHeadersLayer(authorization, sec-websocket-protocol)` — keeps
//!    keys out of any trace output (a browser's WebSocket carries its key as a subprotocol).
//! 5. `Routes`: `/healthz`, `/readyz`, `/metrics` (unless an admin listener serves them)
//!    through axum's router; every other path goes straight to the proxy for `/v1/*` and
//!    lane prefixes, whose handler authenticates first (`auth::client`: managed-mode
//!    gateway keys) and answers 404 for paths it does not forward. WebSocket upgrades
//!    among them are handed to `crate::websocket`, and `/files` and `/batches` under a
//!    lane prefix to `crate::batch`, which serves them itself.
//!
//! What the layers pass each other besides the body:
//!
//! | what | on | set by | read by |
//! |------|----|--------|---------|
//! | `x-request-id` header | request | identify layer (kept or generated) | proxy (ledger, upstream request) |
//! | `x-request-id` header | response | upstream answer, else the proxy, else the identify layer | client |
//! | [`crate::error::ErrorKind`] extension | response | `GatewayError::into_response` | identify layer (label a refusal) |
//! | [`crate::request_id::Logged`] extension | response | proxy, on a failure its ledger settled | identify layer (skip it) |
//!
//! No layer boxes or clones the service stack per request: `from_fn` middleware would, at
//! several allocations per request (see docs/benchmarks.md). The layers wrap the router
//! from outside (not through `Router::layer`, which adds a boxed route future per request
//! that a held request keeps for its whole wait).
//!
//! There is deliberately no global timeout layer: it would bound the response future but
//! not a stream. Deadlines live in the retry loop and the stream's idle timeout.

mod identify;

use std::any::Any;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use futures_util::FutureExt as _;
use futures_util::future::Either;
use http::header::{AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL};
use tower::util::MapResponseLayer;
use tower::{Service, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

use crate::error::GatewayError;
use crate::state::AppState;
use crate::{batch, health, proxy, websocket};
use identify::IdentifyLayer;

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

/// The paths axum's router serves; all others are the proxy's. Anything added here is
/// unauthenticated: only the proxy checks keys.
const LOCAL_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

fn local_routes(serve_metrics: bool) -> Router<AppState> {
    let handlers: [MethodRouter<AppState>; 3] = [get(health::live), get(health::ready), get(health::metrics)];
    LOCAL_PATHS
        .into_iter()
        .zip(handlers)
        .filter(|(path, _)| serve_metrics || *path != "/metrics")
        .fold(Router::new(), |router, (path, handler)| router.route(path, handler))
}

/// The main app: proxy plus health (and metrics unless `serve_metrics` is false), inside
/// the layer stack.
pub fn build_router(
    state: AppState,
    serve_metrics: bool,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send + 'static> + Clone + Send + Sync + 'static
{
    let proxy = proxy::Proxy::new(state.clone());
    // The router keeps the proxy as its fallback, so a local path it does not serve
    // (`/metrics` when the admin listener has it) is forwarded exactly as before.
    let local = local_routes(serve_metrics).fallback_service(proxy.clone()).with_state(state.clone());
    with_layers(Routes { local, proxy, state: state.clone() }, state)
}

/// Local paths to axum's router, the rest straight to the proxy. The router would send
/// them there too, as its fallback, but at a price paid on every proxied request: its
/// path match, an `OriginalUri` extension (two allocations), a boxed clone of the
/// fallback service and the futures around it (measured in docs/benchmarks.md).
#[derive(Clone)]
struct Routes {
    local: Router,
    proxy: proxy::Proxy,
    state: AppState,
}

impl Service<Request> for Routes {
    type Response = Response;
    type Error = Infallible;
    /// The router's future boxed: inline, its 320 bytes would size every request's future,
    /// held ones included, for the sake of health checks.
    type Future = Either<Pin<Box<<Router as Service<Request>>::Future>>, <proxy::Proxy as Service<Request>>::Future>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Both are always ready (axum's router and the proxy say so unconditionally).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if LOCAL_PATHS.contains(&request.uri().path()) {
            Either::Left(Box::pin(self.local.call(request)))
        } else if batch::is_batch_path(&self.state.config, request.uri().path()) {
            Either::Right(Box::pin(batch::handle(self.state.clone(), request).map(Ok)))
        } else if websocket::is_upgrade(&request) {
            Either::Right(Box::pin(websocket::handle(self.state.clone(), request).map(Ok)))
        } else {
            Either::Right(self.proxy.call(request))
        }
    }
}

/// Wrap `routes` in the layer stack documented at the top of this module.
///
/// The layers wrap the routes from outside rather than going in through `Router::layer`,
/// which would put their futures in one more boxed route future (with a `Oneshot` sized
/// for a whole request) for every request, held for as long as the request is.
fn with_layers<S>(
    routes: S,
    state: AppState,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send + 'static> + Clone + Send + Sync + 'static
where
    S: Service<Request, Response = Response, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static,
{
    ServiceBuilder::new()
        // The router did this conversion when it applied the layers itself.
        .layer(MapResponseLayer::new(IntoResponse::into_response))
        .layer(IdentifyLayer { state })
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(SetSensitiveRequestHeadersLayer::new([AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL]))
        .service(routes)
}

/// The admin router for a separate listener: health and metrics only.
pub fn admin_router(state: AppState) -> Router {
    local_routes(true).with_state(state)
}

#[cfg(test)]
mod tests;
