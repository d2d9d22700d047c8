//! The accept loop for one listener: a task per connection, optionally behind TLS
//! (`crate::tls`), served by hyper (HTTP/1.1 or HTTP/2, detected per connection) with a
//! timer, and drained on shutdown. Connections are
//! handed to the gateway's threads in turn (`crate::runtime`): the accepting thread
//! keeps every `n`-th, and each of the others gets its share re-registered with its own
//! runtime, where the connection then lives.
//!
//! Connections are served with upgrades enabled, so a WebSocket handshake can take over
//! its socket (`crate::websocket`); hyper's graceful shutdown stops tracking a connection
//! once it is upgraded, and the WebSocket sessions are drained on their own.
//!
//! It owns connection-level defences only; request bodies are timed where they are read
//! (`proxy::read_body`) and the HTTP layer stack stays in `app.rs`.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{Notify, watch};
use tokio_rustls::TlsAcceptor;
use tower::{Service, ServiceExt};

/// What a listener serves: a service from requests to responses that never fails.
pub(super) trait App:
    Service<http::Request<Body>, Response = Response, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> App for S where
    S: Service<http::Request<Body>, Response = Response, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// Pause after an accept error that is not about one connection (e.g. `EMFILE`): the
/// error repeats at once until some descriptor is freed, and a hot loop would starve the
/// connections that are about to free one. hyper 0.14 and axum wait 1 s; a quarter of
/// that recovers sooner and still cannot spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(250);

/// What one listener needs to serve and drain.
pub(super) struct Listener<S> {
    /// `main` or `admin`, for logs.
    pub name: &'static str,
    pub listener: TcpListener,
    /// The app: a router, or a router inside layers.
    pub router: S,
    pub header_timeout: Duration,
    pub drain_timeout: Duration,
    /// The other threads' runtimes that take a share of the connections.
    pub threads: Vec<Handle>,
    /// TLS on this listener; the handshake runs on the connection's thread.
    pub tls: Option<TlsAcceptor>,
}

/// Accept until `stop` turns true, then close the listener and let open connections
/// finish for up to the drain timeout.
pub(super) async fn serve<S: App>(listener: Listener<S>, mut stop: watch::Receiver<bool>) {
    let Listener { name, listener, router, header_timeout, drain_timeout, threads, tls } = listener;
    let builder = Arc::new(builder(header_timeout));
    let graceful = GracefulShutdown::new();
    let mut turn = 0_usize;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        match accepted {
            Ok((tcp, _)) => {
                // Turn 0 is this thread; the others' runtimes follow in order.
                let on = turn.checked_sub(1).map(|i| &threads[i]);
                turn = (turn + 1) % (threads.len() + 1);
                let connection = Connection {
                    router: router.clone(),
                    builder: Arc::clone(&builder),
                    watcher: graceful.watcher(),
                    header_timeout,
                    tls: tls.clone(),
                };
                spawn_connection(tcp, connection, on);
            }
            Err(error) if is_connection_error(&error) => {}
            Err(error) => {
                tracing::warn!(listener = name, %error, "accept failed; backing off");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    _ = stop.wait_for(|stopped| *stopped) => break,
                }
            }
        }
    }
    // Closing the listener now refuses new connections while the open ones drain.
    drop(listener);
    if tokio::time::timeout(drain_timeout, graceful.shutdown()).await.is_err() {
        tracing::warn!(listener = name, drain_timeout = ?drain_timeout, "drain timeout reached; exiting with requests still in flight");
    }
}

/// One builder per listener. The timer is what makes `header_read_timeout` work: without
/// one (as under `axum::serve`) hyper silently never times a request head out.
fn builder(header_timeout: Duration) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// Everything one connection needs, moved to the thread that serves it.
struct Connection<S> {
    router: S,
    builder: Arc<Builder<TokioExecutor>>,
    watcher: Watcher,
    header_timeout: Duration,
    tls: Option<TlsAcceptor>,
}

impl<S: App> Connection<S> {
    /// The TLS handshake (when the listener has TLS), then HTTP until the connection ends.
    async fn serve(self, tcp: TcpStream) {
        let Some(tls) = self.tls.clone() else { return self.serve_http(tcp).await };
        // The handshake is part of the wait for the first request: a client that opens a
        // connection and sends nothing holds it no longer than the header timeout.
        match tokio::time::timeout(self.header_timeout, tls.accept(tcp)).await {
            Ok(Ok(stream)) => self.serve_http(stream).await,
            Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
            Err(_) => {
                tracing::debug!(header_timeout = ?self.header_timeout, "no TLS handshake within the header timeout");
            }
        }
    }

    async fn serve_http<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection { router, builder, watcher, header_timeout, .. } = self;
        let first_request = Arc::new(Notify::new());
        let service = {
            let first_request = Arc::clone(&first_request);
            hyper::service::service_fn(move |request: http::Request<Incoming>| {
                first_request.notify_one();
                router.clone().oneshot(request.map(Body::new))
            })
        };
        let connection = watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned());
        let mut connection = std::pin::pin!(connection);
        // hyper times each HTTP/1 head once it knows the protocol, but not the protocol
        // sniff before it (a client that sends nothing, or half the h2 preface) nor the
        // wait for the first h2 stream. Bound the whole wait for the first request here.
        let first = tokio::time::timeout(header_timeout, first_request.notified());
        let result = tokio::select! {
            result = connection.as_mut() => result,
            waited = first => {
                if waited.is_err() {
                    tracing::debug!(header_timeout = ?header_timeout, "no request within the header timeout; closing the connection");
                    return;
                }
                connection.await
            }
        };
        if let Err(error) = result {
            tracing::debug!(%error, "connection ended with an error");
        }
    }
}

/// Serve one connection on this thread's runtime, or on `on`'s.
fn spawn_connection<S: App>(tcp: TcpStream, connection: Connection<S>, on: Option<&Handle>) {
    // Streamed chunks are small writes: with Nagle's algorithm on, each waits for the
    // client's delayed ACK (up to 40 ms). The upstream side sets it in `Connector::new`.
    if let Err(error) = tcp.set_nodelay(true) {
        tracing::debug!(%error, "set_nodelay failed");
    }
    let Some(thread) = on else {
        tokio::spawn(connection.serve(tcp));
        return;
    };
    // The socket is registered with this thread's I/O driver: move it to the other's.
    match tcp.into_std() {
        Ok(tcp) => {
            thread.spawn(async move {
                match TcpStream::from_std(tcp) {
                    Ok(tcp) => connection.serve(tcp).await,
                    Err(error) => tracing::debug!(%error, "cannot move a connection to its thread"),
                }
            });
        }
        Err(error) => tracing::debug!(%error, "cannot move a connection to its thread"),
    }
}

/// Errors that concern only the connection being accepted; the listener is fine.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}
