//! Test-only upstream connections (feature `test-util`): each connect opens a
//! `tokio::io::duplex` pipe to an axum router served in-process, so a whole gateway,
//! simulator included, runs on paused tokio time with no socket anywhere.
//!
//! A router is registered under a made-up host; a gateway whose `upstream.base_url` names
//! that host connects to it instead of resolving it (`Connector::new` asks `lookup`).
//! Registrations live as long as the process: a test binary makes a few dozen at most.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use parking_lot::Mutex;
use tokio::io::DuplexStream;
use tower::ServiceExt as _;

/// Bytes buffered in each direction of a pipe: enough for a streamed chunk or a small
/// answer in one write, small enough that a reader that stops exerts backpressure.
const PIPE_BUFFER: usize = 64 * 1024;

static ROUTERS: LazyLock<Mutex<HashMap<String, Router>>> = LazyLock::new(Mutex::default);
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Serve `router` to gateways whose upstream is `http://<the returned host>/…`.
pub fn register(router: Router) -> String {
    // `.invalid` never resolves (RFC 2606), so a missing registration fails loudly.
    let host = format!("upstream-{}.memory.invalid", NEXT.fetch_add(1, Ordering::Relaxed));
    ROUTERS.lock().insert(host.clone(), router);
    host
}

/// The router registered for `host`, if any.
pub(super) fn lookup(host: &str) -> Option<Router> {
    ROUTERS.lock().get(host).cloned()
}

/// Open a pipe to `router`: its far end is served by hyper on a task of its own, as an
/// accepted TCP connection would be.
pub(super) fn connect(router: &Router) -> DuplexStream {
    let (near, far) = tokio::io::duplex(PIPE_BUFFER);
    let router = router.clone();
    tokio::spawn(async move {
        let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let router = router.clone();
            async move {
                let Ok(response) = router.oneshot(request.map(Body::new)).await;
                Ok::<_, Infallible>(response)
            }
        });
        // HTTP/1.1 or HTTP/2 by prior knowledge, whichever the gateway speaks.
        let served = Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(far), service).await;
        if let Err(error) = served {
            tracing::debug!(%error, "in-memory upstream connection ended");
        }
    });
    near
}
