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

/// Serve the bare forwarder in front of `upstream` until killed; logs its address on stderr.
pub async fn serve(upstream: &str) -> Result<()> {
    let client = reqwest::Client::builder().tcp_nodelay(true).pool_max_idle_per_host(1024).build()?;
    let bare = Arc::new(Bare { client, base: format!("http://{upstream}") });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    #[expect(clippy::print_stderr, reason = "the parent process reads the address from stderr")]
    {
        eprintln!("bare forwarder listening on {}", listener.local_addr()?);
    }
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, Router::new().fallback(forward).with_state(bare)).await?;
    Ok(())
}
