//! The lower floor: hyper 1 on both sides, with no axum and no reqwest. A `service_fn`
//! forwards method, path and query, headers and body through one pooled
//! `hyper_util` legacy client and returns the answer, doing exactly what the axum + reqwest
//! floor ([`crate::bare`]) does, so the difference between the two is the cost of the
//! frameworks on top of hyper rather than of forwarding itself.

use std::convert::Infallible;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// The pooled upstream client, shared by this forwarder and the axum + hyper one.
pub type Upstream = Client<HttpConnector, Full<Bytes>>;

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::default());
    *response.status_mut() = code;
    response
}

/// Forward `request` to `base` and return the buffered answer; generic over the request
/// body so the axum + hyper floor ([`crate::bare`]) shares it.
pub async fn forward<B: http_body::Body>(client: Upstream, base: &str, request: Request<B>) -> Response<Full<Bytes>> {
    let (mut parts, body) = request.into_parts();
    // Buffered both ways, like the axum + reqwest floor and like flexgate, which needs the
    // whole request body to rewrite it and the whole answer to account for it.
    let Ok(body) = body.collect().await.map(http_body_util::Collected::to_bytes) else {
        return status(StatusCode::BAD_REQUEST);
    };
    let path = parts.uri.path_and_query().map_or("/", http::uri::PathAndQuery::as_str);
    let Ok(uri) = format!("{base}{}", path.strip_prefix("/flex").unwrap_or(path)).parse::<Uri>() else {
        return status(StatusCode::BAD_REQUEST);
    };
    parts.uri = uri;
    // The client's request may be HTTP/2 (the held mode shares h2c connections); the
    // upstream connection is HTTP/1.1, and the client sets Host from the URI.
    parts.version = http::Version::HTTP_11;
    parts.headers.remove(http::header::HOST);
    let Ok(answer) = client.request(Request::from_parts(parts, Full::new(body))).await else {
        return status(StatusCode::BAD_GATEWAY);
    };
    let (mut parts, body) = answer.into_parts();
    let Ok(body) = body.collect().await.map(http_body_util::Collected::to_bytes) else {
        return status(StatusCode::BAD_GATEWAY);
    };
    // Framing is hyper's to choose for the buffered body (a content-length from `Full`).
    parts.headers.remove(http::header::CONTENT_LENGTH);
    parts.headers.remove(http::header::TRANSFER_ENCODING);
    Response::from_parts(parts, Full::new(body))
}

/// Serve the hyper forwarder in front of `upstream` until killed; logs its address on
/// stderr. `read_buf`: the exact size of the upstream connections' read buffer (hyper's
/// default is adaptive, starting at 8 KiB), to see what it costs per held request.
pub async fn serve(upstream: &str, read_buf: Option<usize>) -> Result<()> {
    let client = client(read_buf);
    // Lives as long as the process; a `&'static str` spares every request a clone.
    let base: &'static str = Box::leak(format!("http://{upstream}").into_boxed_str());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    #[expect(clippy::print_stderr, reason = "the parent process reads the address from stderr")]
    {
        eprintln!("bare hyper forwarder listening on {}", listener.local_addr()?);
    }
    // HTTP/1.1 and h2c (prior knowledge) on one port, as axum::serve offers them.
    let server = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            // Out of file descriptors and the like: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (client, server) = (client.clone(), server.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let client = client.clone();
                async move { Ok::<_, Infallible>(forward(client, base, request).await) }
            });
            let _ = server.serve_connection(TokioIo::new(tcp), service).await;
        });
    }
}

/// The pooled client: `TCP_NODELAY`, idle connections kept and reaped, as reqwest is
/// configured in the axum + reqwest floor. `read_buf`: see [`serve`].
pub fn client(read_buf: Option<usize>) -> Upstream {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let mut builder = Client::builder(TokioExecutor::new());
    builder.pool_max_idle_per_host(1024).pool_timer(TokioTimer::new());
    if let Some(size) = read_buf {
        builder.http1_read_buf_exact_size(size);
    }
    builder.build(connector)
}
