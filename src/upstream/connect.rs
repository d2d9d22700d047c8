//! Opening upstream connections: TCP, then TLS by rustls, directly or through an HTTP proxy.
//!
//! The route is fixed when the client is built (flexgate has one upstream host):
//! directly; an `https` upstream through a proxy's `CONNECT` tunnel with TLS inside it;
//! or an `http` upstream through a forwarding proxy, which gets absolute-form request
//! targets. The connect timeout covers all of it, TCP, tunnel and TLS handshake.
//! Tests built with the `test-util` feature have a fourth route, in-memory (`memory`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder, MaybeHttpsStream};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::UpstreamConfig;
use crate::startup::StartupError;

#[cfg(feature = "test-util")]
pub mod memory;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How the pool (`super::pool`) opens a connection.
#[derive(Clone)]
pub struct Connector {
    route: Route,
    timeout: Duration,
}

#[derive(Clone)]
enum Route {
    Direct(HttpsConnector<HttpConnector>),
    /// `CONNECT` through the proxy, then TLS (or plain HTTP) inside the tunnel.
    Tunnel(HttpsConnector<Tunnel<HttpConnector>>),
    /// A plain-HTTP upstream through a forwarding proxy: every connection goes to it.
    Forward {
        to_proxy: HttpsConnector<HttpConnector>,
        proxy: Uri,
    },
    /// A router registered with `memory::register`, reached over an in-memory pipe.
    #[cfg(feature = "test-util")]
    Memory(axum::Router),
}

impl Connector {
    pub fn new(config: &UpstreamConfig) -> Result<Self, StartupError> {
        #[cfg(feature = "test-util")]
        if let Some(router) = config.base_url.host_str().and_then(memory::lookup) {
            return Ok(Self { route: Route::Memory(router), timeout: config.connect_timeout });
        }
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        // The TLS layer hands `https` URIs down to the TCP connector.
        tcp.enforce_http(false);
        let http2 = config.http2;
        let route = match &config.proxy {
            None => Route::Direct(tls(tcp, http2)?),
            Some(p) if config.base_url.scheme() == "https" => {
                let mut tunnel = Tunnel::new(p.uri.clone(), tcp);
                if let Some(auth) = &p.auth {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Route::Tunnel(tls(tunnel, http2)?)
            }
            Some(p) => Route::Forward { to_proxy: tls(tcp, http2)?, proxy: p.uri.clone() },
        };
        Ok(Self { route, timeout: config.connect_timeout })
    }
}

/// TLS over `conn` for `https` destinations, with Mozilla's roots and ring; `http2`
/// offers h2 by ALPN beside HTTP/1.1.
fn tls<H>(conn: H, http2: bool) -> Result<HttpsConnector<H>, StartupError> {
    let builder = HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(Arc::new(rustls::crypto::ring::default_provider()))
        .map_err(StartupError::Tls)?
        .https_or_http();
    Ok(if http2 {
        builder.enable_all_versions().wrap_connector(conn)
    } else {
        builder.enable_http1().wrap_connector(conn)
    })
}

impl tower::Service<Uri> for Connector {
    type Response = Io;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Io, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match &mut self.route {
            Route::Direct(c) | Route::Forward { to_proxy: c, .. } => c.poll_ready(cx),
            Route::Tunnel(c) => c.poll_ready(cx),
            #[cfg(feature = "test-util")]
            Route::Memory(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        // hyper-rustls already boxes its future; the one box here adds the timeout.
        let (connecting, proxied) = match &mut self.route {
            Route::Direct(c) => (c.call(dst), false),
            Route::Tunnel(c) => (c.call(dst), false),
            Route::Forward { to_proxy, proxy } => (to_proxy.call(proxy.clone()), true),
            #[cfg(feature = "test-util")]
            Route::Memory(router) => {
                let pipe = TokioIo::new(memory::connect(router));
                return Box::pin(async move { Ok(Io { inner: Inner::Memory(pipe), proxied: false }) });
            }
        };
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(io) => Ok(Io::new(io?, proxied)),
                Err(_) => Err(format!("no connection within `upstream.connect_timeout` ({timeout:?})").into()),
            }
        })
    }
}

/// One upstream connection: TCP, with TLS when the upstream is `https`.
///
/// The TLS state is boxed: rustls keeps about a kilobyte inline, and an unboxed enum
/// would make every plain connection that large too, twice over for a held request (in
/// hyper's connection task and in the boxed future of the request that opened it).
pub struct Io {
    inner: Inner,
    /// Sent to a forwarding proxy: requests need absolute-form targets.
    proxied: bool,
}

type Plain = TokioIo<TcpStream>;

enum Inner {
    Plain(Plain),
    Tls(Box<MaybeHttpsStream<Plain>>),
    #[cfg(feature = "test-util")]
    Memory(TokioIo<tokio::io::DuplexStream>),
}

impl Io {
    fn new(stream: MaybeHttpsStream<Plain>, proxied: bool) -> Self {
        let inner = match stream {
            MaybeHttpsStream::Http(tcp) => Inner::Plain(tcp),
            tls @ MaybeHttpsStream::Https(_) => Inner::Tls(Box::new(tls)),
        };
        Self { inner, proxied }
    }
}

/// Run `$call` with `$s` bound to the pinned stream of whichever variant `$io` holds.
macro_rules! each {
    ($io:expr, $s:ident => $call:expr) => {
        match &mut $io.get_mut().inner {
            Inner::Plain(tcp) => {
                let $s = Pin::new(tcp);
                $call
            }
            Inner::Tls(tls) => {
                let $s = Pin::new(&mut **tls);
                $call
            }
            #[cfg(feature = "test-util")]
            Inner::Memory(pipe) => {
                let $s = Pin::new(pipe);
                $call
            }
        }
    };
}

impl Connection for Io {
    fn connected(&self) -> Connected {
        let connected = match &self.inner {
            Inner::Plain(tcp) => tcp.connected(),
            Inner::Tls(tls) => tls.connected(),
            #[cfg(feature = "test-util")]
            Inner::Memory(_) => Connected::new(),
        };
        connected.proxy(self.proxied)
    }
}

impl Read for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_read(cx, buf))
    }
}

impl Write for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        each!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Inner::Plain(tcp) => tcp.is_write_vectored(),
            Inner::Tls(tls) => tls.is_write_vectored(),
            #[cfg(feature = "test-util")]
            Inner::Memory(pipe) => pipe.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => s.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_connection_does_not_carry_the_tls_state() {
        // Held requests keep one connection each; its size is paid ten thousand times.
        assert!(std::mem::size_of::<MaybeHttpsStream<Plain>>() > 512, "the TLS stream is large");
        assert!(std::mem::size_of::<Io>() <= 64, "Io is {} bytes", std::mem::size_of::<Io>());
    }
}
