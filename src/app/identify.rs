//! The outermost layer: the request id both ways, and the record of refusals that no
//! request ledger settled.
//!
//! One hand-written layer instead of four (two `from_fn` middlewares and tower-http's
//! set/propagate request-id pair): a `from_fn` middleware boxes its future and clones the
//! service stack below it on every request, which showed as ten allocations per request
//! in a heap profile.

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
use crate::proxy::Logged;
use crate::proxy::headers::{X_REQUEST_ID, valid_request_id};
use crate::state::AppState;

#[derive(Clone)]
pub struct FrontLayer {
    pub state: AppState,
}

impl<S> Layer<S> for FrontLayer {
    type Service = Front<S>;

    fn layer(&self, inner: S) -> Front<S> {
        Front { inner, state: self.state.clone() }
    }
}

#[derive(Clone)]
pub struct Front<S> {
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

impl<S, B> Service<Request> for Front<S>
where
    S: Service<Request, Response = Response<B>, Error = Infallible>,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = FrontFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        // A client id is kept only when it is safe to log and forward; otherwise ours.
        let request_id = match request.headers().get(X_REQUEST_ID) {
            Some(v) if valid_request_id(v) => v.clone(),
            _ => {
                let id = new_request_id();
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
        FrontFuture { inner: self.inner.call(request), seen: Some(seen) }
    }
}

/// `fg-` and 32 hex digits of a random 128-bit number.
fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = *b"fg-00000000000000000000000000000000";
    for (i, b) in rand::random::<[u8; 16]>().into_iter().enumerate() {
        id[3 + 2 * i] = HEX[usize::from(b >> 4)];
        id[4 + 2 * i] = HEX[usize::from(b & 0xf)];
    }
    // Hex digits are always a valid header value; the fallback is never taken.
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("fg-unknown"))
}

pin_project_lite::pin_project! {
    pub struct FrontFuture<F> {
        #[pin]
        inner: F,
        seen: Option<Seen>,
    }
}

impl<F: Future<Output = Result<Response<B>, Infallible>>, B> Future for FrontFuture<F> {
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
        let outcome = if *kind == ErrorKind::Internal { "gateway_error" } else { "client_error" };
        seen.state.metrics.requests.with_label_values(&["other", "none", "other", "none", outcome]).inc();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_fresh_valid_and_well_formed() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_ne!(a, b);
        for id in [a, b] {
            assert!(valid_request_id(&id));
            let text = id.to_str().unwrap();
            assert!(text.starts_with("fg-") && text.len() == 35, "{text}");
            assert!(text[3..].bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{text}");
        }
    }
}
