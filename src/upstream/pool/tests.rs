//! The pool against a real HTTP/1.1 server on port 0 that counts its connections.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt as _, stream};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::{Pool, PoolSettings};
use crate::config::Config;
use crate::upstream::connect::Connector;

type Reply = Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>;

/// Serves `/ok` (a short body), `/close` (the same with `Connection: close`) and
/// `/endless` (one chunk, then a body that never ends); the `Host` header and target
/// come back in the body of `/ok` as `host target`.
async fn server() -> (String, Arc<AtomicUsize>) {
    serve(false).await
}

/// `server`, speaking HTTP/2 (prior knowledge) when `h2`.
async fn serve(h2: bool) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            let service = hyper::service::service_fn(|request: Request<hyper::body::Incoming>| async move {
                let full = |text: String| Full::new(Bytes::from(text)).map_err(|e| match e {}).boxed();
                let reply: Reply = match request.uri().path() {
                    "/close" => Response::builder().header("connection", "close").body(full("bye".into())).unwrap(),
                    "/endless" => {
                        let first = stream::iter([Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"first")))]);
                        Response::new(BodyExt::boxed(StreamBody::new(first.chain(stream::pending()))))
                    }
                    _ => {
                        let host = request.headers().get("host").map(|h| h.to_str().unwrap().to_owned());
                        Response::new(full(format!("{} {}", host.unwrap_or_default(), request.uri())))
                    }
                };
                Ok::<_, Infallible>(reply)
            });
            if h2 {
                let builder = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
                tokio::spawn(builder.serve_connection(TokioIo::new(tcp), service));
            } else {
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service));
            }
        }
    });
    (base, accepted)
}

fn pool(base: &str, idle_timeout: Duration, max_idle: usize) -> Pool {
    pool_with(base, PoolSettings { http2: false, idle_timeout, max_idle, threads: 1 })
}

fn pool_with(base: &str, settings: PoolSettings) -> Pool {
    let config = Config::for_upstream(base).unwrap();
    let connector = Connector::new(&config.upstream).unwrap();
    Pool::new(connector, &base.parse().unwrap(), false, settings).unwrap()
}

fn get(base: &str, path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("{base}{path}")).body(Full::default()).unwrap()
}

async fn send(pool: &Pool, base: &str, path: &str) -> Result<Response<super::PoolBody>, super::SendError> {
    let uri: http::Uri = format!("{base}{path}").parse().unwrap();
    pool.send(&uri, || get(base, path)).await
}

async fn text(pool: &Pool, base: &str, path: &str) -> String {
    let response = send(pool, base, path).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn a_connection_is_reused_once_its_answer_is_read() {
    let (base, accepted) = server().await;
    let pool = pool(&base, Duration::from_secs(90), 8);
    let port = base.rsplit(':').next().unwrap();
    // Host names the upstream (with its non-default port); the target is origin-form.
    assert_eq!(text(&pool, &base, "/ok?x=1").await, format!("127.0.0.1:{port} /ok?x=1"));
    assert_eq!(pool.idle_count(), 1);
    for _ in 0..5 {
        text(&pool, &base, "/ok").await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn requests_in_flight_together_get_a_connection_each() {
    let (base, accepted) = server().await;
    let pool = pool(&base, Duration::from_secs(90), 2);
    let first = send(&pool, &base, "/ok").await.unwrap();
    let second = send(&pool, &base, "/ok").await.unwrap();
    let third = send(&pool, &base, "/ok").await.unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    for response in [first, second, third] {
        response.into_body().collect().await.unwrap();
    }
    assert_eq!(pool.idle_count(), 2, "no more idle connections than `max_idle`");
}

#[tokio::test]
async fn an_answer_dropped_before_its_end_does_not_return_its_connection() {
    let (base, accepted) = server().await;
    let pool = pool(&base, Duration::from_secs(90), 8);
    let mut endless = send(&pool, &base, "/endless").await.unwrap().into_body();
    let first = endless.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "first");
    drop(endless);
    assert_eq!(pool.idle_count(), 0);
    text(&pool, &base, "/ok").await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_connection_the_server_closes_is_not_reused() {
    let (base, accepted) = server().await;
    let pool = pool(&base, Duration::from_secs(90), 8);
    assert_eq!(text(&pool, &base, "/close").await, "bye");
    for _ in 0..3 {
        text(&pool, &base, "/ok").await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_expired_idle_connection_is_replaced() {
    let (base, accepted) = server().await;
    let pool = pool(&base, Duration::ZERO, 8);
    text(&pool, &base, "/ok").await;
    text(&pool, &base, "/ok").await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let error = send(&pool(&base, Duration::from_secs(90), 8), &base, "/ok").await.unwrap_err();
    assert!(error.is_connect(), "{error:?}");
}

#[tokio::test]
async fn a_waiting_exchange_holds_little() {
    // The future a held request keeps while it waits: hyper's promise of the answer
    // and the not-yet-sent request (hyper's own future, 272 bytes), not a second copy.
    let (base, _) = server().await;
    let pool = pool(&base, Duration::from_secs(90), 8);
    let uri: http::Uri = base.parse().unwrap();
    let size = std::mem::size_of_val(&pool.send(&uri, || get(&base, "/ok")));
    assert!(size <= 448, "the pool's send future is {size} bytes");
}

#[tokio::test]
async fn http2_requests_share_one_connection_even_when_they_start_together() {
    let (base, accepted) = serve(true).await;
    let pool =
        pool_with(&base, PoolSettings { http2: true, idle_timeout: Duration::from_secs(90), max_idle: 8, threads: 1 });
    let answers = futures_util::future::join_all((0..8).map(|_| text(&pool, &base, "/ok"))).await;
    assert_eq!(answers.len(), 8);
    // HTTP/2 carries no `Host`; the authority travels in the request's URI.
    assert!(answers.iter().all(|a| a.ends_with("/ok")), "{answers:?}");
    text(&pool, &base, "/ok").await;
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(pool.idle_count(), 0, "an HTTP/2 connection is shared, never idle-listed");
}

/// A server that answers as soon as it has a request's head and never reads on, as a
/// server refusing an upload early may: the client is left writing the body.
/// Read a request's head (and whatever of its body came with it) from a raw socket.
async fn read_head(tcp: &mut tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt as _;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut buf).await.unwrap();
        if n == 0 {
            return;
        }
        head.extend_from_slice(&buf[..n]);
    }
}

async fn early_answering_server() -> (String, Arc<AtomicUsize>) {
    use tokio::io::AsyncWriteExt as _;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut open = Vec::new();
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            read_head(&mut tcp).await;
            tcp.write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 2\r\n\r\nno").await.unwrap();
            open.push(tcp);
        }
    });
    (base, accepted)
}

#[tokio::test]
async fn a_connection_still_writing_its_request_is_not_handed_out() {
    let (base, accepted) = early_answering_server().await;
    let pool = pool(&base, Duration::from_secs(90), 8);
    let uri: http::Uri = format!("{base}/upload").parse().unwrap();
    // Far more than the sockets' buffers hold, so hyper is still writing when the
    // answer has been read to its end.
    let upload = Bytes::from(vec![b'x'; 64 << 20]);
    let build = || Request::post(uri.clone()).body(Full::new(upload.clone())).unwrap();
    for _ in 0..2 {
        let answered = tokio::time::timeout(Duration::from_secs(10), async {
            let response = pool.send(&uri, build).await.unwrap();
            response.into_body().collect().await.unwrap().to_bytes()
        });
        assert_eq!(answered.await.expect("the second request waited on a busy connection"), "no");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_http1_connection_has_no_task_of_its_own() {
    let (base, accepted) = server().await;
    let pool = pool(&base, Duration::from_secs(90), 8);
    text(&pool, &base, "/ok").await; // starts the reaper, the pool's one task
    let alive = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let before = alive();
    let answers: Vec<_> = futures_util::future::join_all((0..4).map(|_| text(&pool, &base, "/ok"))).await;
    assert_eq!(answers.len(), 4);
    let opened = accepted.load(Ordering::SeqCst) - 1;
    assert!(opened >= 3, "{opened} new connections");
    // Only the test server's tasks, one per connection: the request that holds a
    // connection drives it, so the pool spawned nothing for the new ones.
    assert_eq!(alive() - before, opened, "tasks alive beyond the server's connections");
}

/// Answers one request per connection with keep-alive, then closes the socket when told.
async fn closing_server() -> (String, tokio::sync::mpsc::UnboundedSender<()>) {
    use tokio::io::AsyncWriteExt as _;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (close, mut closes) = tokio::sync::mpsc::unbounded_channel::<()>();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        read_head(&mut tcp).await;
        tcp.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
        closes.recv().await;
        drop(tcp);
    });
    (base, close)
}

#[tokio::test]
async fn the_sweep_closes_idle_connections_the_server_closed() {
    let (base, close) = closing_server().await;
    let pool = pool(&base, Duration::from_secs(90), 8);
    assert_eq!(text(&pool, &base, "/ok").await, "ok");
    pool.sweep();
    assert_eq!(pool.idle_count(), 1, "an open idle connection survives the sweep");
    close.send(()).unwrap();
    // Bounded: the server's FIN has to reach the socket; no task polls it meanwhile.
    let swept = tokio::time::timeout(Duration::from_secs(10), async {
        while pool.idle_count() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            pool.sweep();
        }
    });
    assert!(swept.await.is_ok(), "the closed connection stayed in the pool");
}
