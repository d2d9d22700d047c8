//! The floor of the stack flexgate is built on: an axum server that forwards each request
//! with one pooled reqwest client and returns the answer, with nothing else (no routing,
//! accounting, metrics, logging or header hygiene). Measured like flexgate, it shows how
//! much of flexgate's cost per request is the HTTP stack and the kernel rather than flexgate.

use std::sync::Arc;

use anyhow::Result;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use tokio::net::TcpListener;

/// Which stack a bare forwarder is built on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// axum server, reqwest client: what flexgate is built on.
    AxumReqwest,
    /// axum server, the `hyper_util` client of [`crate::bare_hyper`]: what replacing only
    /// reqwest would leave.
    AxumHyper,
    /// hyper server and `hyper_util` client ([`crate::bare_hyper`]).
    Hyper,
    /// No HTTP: a byte relay on blocking sockets ([`crate::relay`]).
    TcpRelay,
}

struct Bare {
    client: reqwest::Client,
    base: String,
}

async fn forward(State(bare): State<Arc<Bare>>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 32 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let path = parts.uri.path();
    let url = format!("{}{}", bare.base, path.strip_prefix("/flex").unwrap_or(path));
    parts.headers.remove(http::header::HOST);
    let sent = bare.client.request(parts.method, url).headers(parts.headers).body(body).send().await;
    let Ok(answer) = sent else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let mut headers = answer.headers().clone();
    headers.remove(http::header::CONTENT_LENGTH);
    headers.remove(http::header::TRANSFER_ENCODING);
    match answer.bytes().await {
        Ok(bytes) => (status, headers, Body::from(bytes)).into_response(),
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

struct AxumHyper {
    client: crate::bare_hyper::Upstream,
    base: String,
}

async fn forward_hyper(State(floor): State<Arc<AxumHyper>>, request: Request) -> Response {
    crate::bare_hyper::forward(floor.client.clone(), &floor.base, request).await.into_response()
}

/// Serve the bare forwarder in front of `upstream` until killed; logs its address on
/// stderr. `hyper_client`: forward with the `hyper_util` client instead of reqwest.
pub async fn serve(upstream: &str, hyper_client: bool) -> Result<()> {
    let base = format!("http://{upstream}");
    let router = if hyper_client {
        let floor = Arc::new(AxumHyper { client: crate::bare_hyper::client(None), base });
        Router::new().fallback(forward_hyper).with_state(floor)
    } else {
        let client = reqwest::Client::builder().tcp_nodelay(true).pool_max_idle_per_host(1024).build()?;
        Router::new().fallback(forward).with_state(Arc::new(Bare { client, base }))
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    #[expect(clippy::print_stderr, reason = "the parent process reads the address from stderr")]
    {
        eprintln!("bare forwarder listening on {}", listener.local_addr()?);
    }
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router).await?;
    Ok(())
}
