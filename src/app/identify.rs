//! The identify layer, outermost but for the response conversion: gives every request its
//! id (both ways), and records the refusals that no request ledger settled.
//!
//! One hand-written layer instead of four (two `from_fn` middlewares and tower-http's
//! set/propagate request-id pair): a `from_fn` middleware boxes its future and clones the
//! service stack below it on every request (the allocations are counted in
//! docs/benchmarks.md).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::Request;
use http::Response;
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Method, Uri, Version};
use tower::{Layer, Service};

use crate::error::ErrorKind;
use crate::metrics::Outcome;
use crate::request_id::{self, Logged, X_REQUEST_ID};
use crate::state::AppState;

#[derive(Clone)]
pub struct IdentifyLayer {
    pub state: AppState,
}

impl<S> Layer<S> for IdentifyLayer {
    type Service = Identify<S>;

    fn layer(&self, inner: S) -> Identify<S> {
        Identify { inner, state: self.state.clone() }
    }
}

#[derive(Clone)]
pub struct Identify<S> {
    inner: S,
    state: AppState,
}

/// What the response side needs from the request. Cheap handles (reference counts, no
/// copies): most requests never use them.
struct Seen {
    state: AppState,
    method: Method,
    uri: Uri,
    request_id: HeaderValue,
    sent_body: bool,
}

impl<S, B> Service<Request> for Identify<S>
where
    S: Service<Request, Response = Response<B>, Error = Infallible>,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = IdentifyFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // A client id is kept only when it is safe to log and forward; otherwise ours.
        let request_id = match request.headers().get(X_REQUEST_ID) {
            Some(v) if request_id::is_valid(v) => v.clone(),
            _ => {
                let id = request_id::generate();
                request.headers_mut().insert(X_REQUEST_ID, id.clone());
                id
            }
        };
        let seen = Seen {
            state: self.state.clone(),
            method: request.method().clone(),
            uri: request.uri().clone(),
            request_id,
            sent_body: request.version() <= Version::HTTP_11 && has_body(request.headers()),
        };
        IdentifyFuture { inner: self.inner.call(request), seen: Some(seen) }
    }
}

pin_project_lite::pin_project! {
    pub struct IdentifyFuture<F> {
        #[pin]
        inner: F,
        seen: Option<Seen>,
    }
}

impl<F: Future<Output = Result<Response<B>, Infallible>>, B> Future for IdentifyFuture<F> {
    type Output = Result<Response<B>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut response) = ready!(this.inner.poll(cx));
        let Some(seen) = this.seen.take() else {
            return Poll::Ready(Ok(response));
        };
        // The upstream's own `x-request-id` wins when the answer carries one.
        if !response.headers().contains_key(X_REQUEST_ID) {
            response.headers_mut().insert(X_REQUEST_ID, seen.request_id.clone());
        }
        // A 2xx never carries an error to record, so success is not marked `Logged` (an
        // extension costs two allocations).
        if !response.status().is_success() && response.extensions().get::<Logged>().is_none() {
            observe(&seen, &mut response);
        }
        Poll::Ready(Ok(response))
    }
}

/// Log and count a response that carries an [`ErrorKind`] but was not settled by a request
/// ledger (rejections before routing: 401, 404, 413, bad JSON, panics).
fn observe<B>(seen: &Seen, response: &mut Response<B>) {
    if let Some(kind) = response.extensions().get::<ErrorKind>() {
        let outcome = Outcome::from(*kind);
        seen.state.metrics.rejected(outcome).inc();
        let outcome = outcome.as_str();
        let request_id = seen.request_id.to_str().unwrap_or_default();
        let path: String = seen.uri.path().chars().take(256).collect();
        tracing::info!(request_id = %request_id, method = %seen.method, path = %path, status = response.status().as_u16(), outcome, "request rejected");
    }
    // A refusal mostly comes before the body was read. hyper then drops the connection
    // after the answer without saying so, and a client that reuses it for its next
    // request races the close and gets a connection error for an innocent request.
    let status = response.status();
    if seen.sent_body && (status.is_client_error() || status.is_server_error()) {
        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
}

/// Whether an HTTP/1 request carries a body (a non-zero length, or chunked).
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(TRANSFER_ENCODING) || headers.get(CONTENT_LENGTH).is_some_and(|v| v.as_bytes() != b"0")
}
