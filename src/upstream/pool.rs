//! flexgate's own upstream connection pool: HTTP/1.1 connections reused newest first, or
//! one shared HTTP/2 connection.
//!
//! An HTTP/1.1 connection has no task of its own (`Conn1`): the request that holds it
//! drives hyper's connection state machine from its own task, while it waits for the
//! answer and while it reads the body. A spawned connection task would put two task
//! hand-offs on every exchange (the request to the connection task, its answer and each
//! body chunk back). That is why the pool was built this way, when the gateway ran on
//! tokio's multi-threaded runtime: either hand-off could land on the other worker, which
//! the kernel must first wake, so the hop cost scheduler work on every request and a
//! thread wake-up's latency on an idle gateway. The gateway's threads are current-thread
//! runtimes now (`crate::runtime`), so a hand-off would stay on its thread, but it would
//! still be a task wake-up per hop that the request does not need. Idle connections are
//! not polled, so the pool checks each one as it is taken out, and the reaper sweeps them
//! for closes.
//!
//! flexgate has one upstream host, so the pool is a list, not a map keyed by origin.
//! hyper-util's pooled client was replaced because a held request paid for its
//! generality: the client boxes each request's whole future (4.1 KiB, sized by its
//! connecting state) for as long as the answer takes, which for flex is minutes; and each
//! request costs a pool-key hash, a spawned task that hands the connection back, and the
//! set-up of a connect future even when an idle connection is there. Here a connection
//! goes back to the pool when its answer's body has been read to the end (`PoolBody`),
//! and connecting is boxed on its own, so a waiting request holds a few words.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, header};
use http_body_util::Full;
use hyper::client::conn::http2;
use hyper_util::client::legacy::connect::Connection as _;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use parking_lot::Mutex;
use tokio::time::Instant;
use tower::ServiceExt as _;

use super::connect::{BoxError, Connector};
use crate::startup::StartupError;

use body::Back;
pub use body::PoolBody;
use http1::{Conn1, Exchange};

type H1 = hyper::client::conn::http1::SendRequest<Full<Bytes>>;
type H2 = http2::SendRequest<Full<Bytes>>;

/// Why no answer came back.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection: TCP, the proxy, TLS or the HTTP handshake failed.
    #[error("connection failed")]
    Connect(#[source] BoxError),
    /// The connection broke before the answer's head arrived.
    #[error("the connection broke before an answer")]
    Broken(#[source] hyper::Error),
}

impl SendError {
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect(_))
    }
}

/// How the pool behaves; `Upstream::new` fills it from the configuration.
pub struct PoolSettings {
    /// Speak HTTP/2: by prior knowledge over `http`, offered by ALPN over `https`.
    pub http2: bool,
    /// An idle connection older than this is closed instead of reused.
    pub idle_timeout: Duration,
    /// Idle connections kept; more are closed as their answers end.
    pub max_idle: usize,
    /// The gateway's threads (`crate::runtime`): each keeps its own idle connections.
    pub threads: usize,
}

#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    connector: Connector,
    /// Every HTTP/1.1 connection goes to a forwarding proxy: absolute-form targets.
    proxied: bool,
    /// `Host` for HTTP/1.1 requests: the upstream's host, and its port if not the default.
    host: HeaderValue,
    /// Prior-knowledge HTTP/2 (`http` upstream with `http2`).
    h2_only: bool,
    /// HTTP/2 may be spoken: look for the shared connection first.
    h2_possible: AtomicBool,
    h2: Mutex<Option<H2>>,
    /// Serialises opening the HTTP/2 connection, so a burst opens one, not one each.
    h2_connecting: tokio::sync::Mutex<()>,
    /// Idle HTTP/1.1 connections, one list per gateway thread: a connection's socket is
    /// registered with the thread that opened it, and a request on another thread would
    /// have that thread's I/O driver wake it, a cross-thread hop per event.
    idle: Box<[Mutex<Vec<Idle>>]>,
    settings: PoolSettings,
    reaper_started: AtomicBool,
}

struct Idle {
    conn: Box<Conn1>,
    since: Instant,
}

enum Acquired {
    H1 { conn: Box<Conn1>, reused: bool },
    H2(H2),
}

enum Opened {
    H1(Box<Conn1>),
    H2(H2),
}

impl Pool {
    pub fn new(connector: Connector, base: &Uri, proxied: bool, settings: PoolSettings) -> Result<Self, StartupError> {
        let host = base.host().ok_or(StartupError::UpstreamHost)?;
        let default_port = if base.scheme() == Some(&Scheme::HTTPS) { 443 } else { 80 };
        let host = match base.port_u16() {
            Some(port) if port != default_port => format!("{host}:{port}"),
            _ => host.to_owned(),
        };
        let host = HeaderValue::try_from(host).map_err(|_| StartupError::UpstreamHost)?;
        let h2_only = settings.http2 && base.scheme() == Some(&Scheme::HTTP);
        Ok(Self {
            shared: Arc::new(Shared {
                connector,
                proxied,
                host,
                h2_only,
                h2_possible: AtomicBool::new(settings.http2),
                h2: Mutex::new(None),
                h2_connecting: tokio::sync::Mutex::new(()),
                idle: (0..settings.threads.max(1)).map(|_| Mutex::new(Vec::new())).collect(),
                settings,
                reaper_started: AtomicBool::new(false),
            }),
        })
    }

    /// Send the request `build` makes (its URI absolute, `uri`) on a pooled connection
    /// or a new one.
    ///
    /// A held request keeps this future for the whole wait, so the request is built only
    /// when a connection is ready and moves into it at once: what waits is hyper's
    /// promise of the answer. A reused connection that closed before the request was
    /// written gets a freshly built copy on another connection: the server never saw it.
    pub async fn send(
        &self,
        uri: &Uri,
        build: impl Fn() -> Request<Full<Bytes>>,
    ) -> Result<Response<PoolBody>, SendError> {
        let shared = &self.shared;
        loop {
            let (mut conn, reused) = match shared.acquire(uri).await? {
                Acquired::H1 { conn, reused } => (conn, reused),
                Acquired::H2(mut h2) => {
                    let response = h2.send_request(build()).await.map_err(SendError::Broken)?;
                    return Ok(response.map(|body| PoolBody::new(body, None)));
                }
            };
            let answer = conn.sender.try_send_request(shared.prepare_h1(build()));
            match (Exchange { conn: &mut conn, answer }).await {
                Ok(response) => {
                    let back = Back { pool: Arc::clone(shared), conn };
                    return Ok(response.map(|body| PoolBody::new(body, Some(back))));
                }
                Err(e) if reused && e.message().is_some() => {}
                Err(e) => return Err(SendError::Broken(e.into_error())),
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn idle_count(&self) -> usize {
        self.shared.idle.iter().map(|list| list.lock().len()).sum()
    }

    #[cfg(test)]
    pub(crate) fn sweep(&self) {
        self.shared.sweep();
    }
}

impl Shared {
    /// The shared HTTP/2 connection, an idle HTTP/1.1 one, or a new one (opening is
    /// boxed: it is rare, and its state would otherwise sit in every waiting request).
    async fn acquire(&self, uri: &Uri) -> Result<Acquired, SendError> {
        if self.h2_possible.load(Ordering::Relaxed)
            && let Some(h2) = self.live_h2()
        {
            return Ok(Acquired::H2(h2));
        }
        if let Some(conn) = self.checkout() {
            return Ok(Acquired::H1 { conn, reused: true });
        }
        Ok(match Box::pin(self.open(uri)).await? {
            Opened::H1(conn) => Acquired::H1 { conn, reused: false },
            Opened::H2(h2) => Acquired::H2(h2),
        })
    }

    fn live_h2(&self) -> Option<H2> {
        let mut slot = self.h2.lock();
        match &*slot {
            Some(h2) if !h2.is_closed() => Some(h2.clone()),
            Some(_) => {
                *slot = None;
                None
            }
            None => None,
        }
    }

    /// The newest idle HTTP/1.1 connection that is ready for a request and not expired.
    fn checkout(&self) -> Option<Box<Conn1>> {
        loop {
            let Idle { mut conn, since } = self.idle_here().lock().pop()?;
            // Not reusable: closed since it went back (the server hung up). Checked
            // outside the lock; a closed one is dropped (and its socket closed) there too.
            if since.elapsed() < self.settings.idle_timeout && conn.is_reusable() {
                return Some(conn);
            }
        }
    }

    /// Open a connection. An HTTP/2 one becomes the shared one; while it is being
    /// opened, other requests wait for it instead of opening their own.
    async fn open(&self, uri: &Uri) -> Result<Opened, SendError> {
        if !self.h2_possible.load(Ordering::Relaxed) {
            return self.connect(uri).await;
        }
        let opening = self.h2_connecting.lock().await;
        if let Some(h2) = self.live_h2() {
            return Ok(Opened::H2(h2));
        }
        if !self.h2_possible.load(Ordering::Relaxed) {
            // The connection opened meanwhile spoke HTTP/1.1: no need to queue.
            drop(opening);
            return self.connect(uri).await;
        }
        let opened = self.connect(uri).await?;
        match &opened {
            Opened::H2(h2) => *self.h2.lock() = Some(h2.clone()),
            // The server chose HTTP/1.1 by ALPN, and will again.
            Opened::H1(_) => self.h2_possible.store(false, Ordering::Relaxed),
        }
        Ok(opened)
    }

    async fn connect(&self, uri: &Uri) -> Result<Opened, SendError> {
        let io = self.connector.clone().oneshot(uri.clone()).await.map_err(SendError::Connect)?;
        let handshake = |e: hyper::Error| SendError::Connect(e.into());
        if self.h2_only || io.connected().is_negotiated_h2() {
            let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(handshake)?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
                }
            });
            return Ok(Opened::H2(sender));
        }
        let (sender, driver) = hyper::client::conn::http1::handshake(io).await.map_err(handshake)?;
        Ok(Opened::H1(Box::new(Conn1 { sender, driver: Some(driver) })))
    }

    /// HTTP/1.1 wants `Host` and an origin-form target, or the absolute form for a
    /// forwarding proxy.
    fn prepare_h1(&self, mut request: Request<Full<Bytes>>) -> Request<Full<Bytes>> {
        request.headers_mut().entry(header::HOST).or_insert_with(|| self.host.clone());
        if !self.proxied && request.uri().scheme().is_some() {
            let path = request.uri().path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
            *request.uri_mut() = Uri::from(path);
        }
        request
    }

    /// Take back a connection whose answer was read to its end. One more turn of the
    /// driver (in the reader's task, `cx`) usually finishes the exchange and marks it
    /// ready; if not, it is still writing a request body the server answered early,
    /// which can take forever. Such a connection is driven on a task of its own, up to
    /// the idle limit, and never handed out busy.
    fn put(self: &Arc<Self>, mut conn: Box<Conn1>, cx: &mut Context<'_>) {
        if !conn.drive(cx) {
            return;
        }
        if conn.sender.is_ready() {
            self.keep(conn);
            return;
        }
        let pool = Arc::clone(self);
        tokio::spawn(async move {
            let ready = std::future::poll_fn(|cx| {
                if !conn.drive(cx) {
                    return Poll::Ready(false);
                }
                conn.sender.poll_ready(cx).map(|r| r.is_ok())
            });
            if let Ok(true) = tokio::time::timeout(pool.settings.idle_timeout, ready).await {
                pool.keep(conn);
            }
        });
    }

    /// This thread's idle list.
    fn idle_here(&self) -> &Mutex<Vec<Idle>> {
        &self.idle[crate::runtime::current() % self.idle.len()]
    }

    fn keep(self: &Arc<Self>, conn: Box<Conn1>) {
        {
            let mut idle = self.idle_here().lock();
            if idle.len() >= self.settings.max_idle.div_ceil(self.idle.len()) {
                return;
            }
            idle.push(Idle { conn, since: Instant::now() });
        }
        if !self.reaper_started.swap(true, Ordering::Relaxed) {
            reaper::spawn(Arc::downgrade(self), self.settings.idle_timeout);
        }
    }
}

mod body;
mod http1;
mod reaper;
#[cfg(test)]
mod tests;
