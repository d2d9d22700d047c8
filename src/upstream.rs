//! The upstream client: flexgate's connection pool and the base URL every request goes to.
//!
//! flexgate only ever talks to `upstream.base_url`; request paths are appended to it
//! after the lane prefix is stripped, so a client cannot steer it to another host.
//! hyper's connections are driven directly by flexgate's pool (`pool`): reqwest's layers
//! (redirect policy, a second URL parse, header copies) and hyper-util's pooled client (a
//! boxed future per waiting request, held for minutes on flex) cost CPU and memory per
//! request that flexgate does not need (figures: docs/benchmarks.md, "Figures behind the
//! code").

pub mod attempt;
pub mod backoff;
pub mod classify;
pub mod connect;
pub mod pool;
pub mod retry;
pub mod settle;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri, header};
use http_body_util::Full;

use crate::config::UpstreamConfig;
use crate::startup::StartupError;
use connect::Connector;
use pool::{Pool, PoolBody, PoolSettings, SendError};

/// Idle upstream connections older than this are closed rather than reused; servers
/// commonly drop idle keep-alive connections after a minute or two.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle upstream connections kept for reuse.
const POOL_MAX_IDLE: usize = 1024;

#[derive(Clone)]
pub struct Upstream {
    pool: Pool,
    /// `scheme://host[:port]/path` without a trailing slash.
    base: String,
    /// `Bearer <key>` for managed mode; marked sensitive so it is never logged.
    managed_auth: Option<HeaderValue>,
    /// `Proxy-Authorization` for a forwarding proxy; a tunnel sends it with `CONNECT`.
    proxy_auth: Option<HeaderValue>,
    /// Opens the dedicated HTTP/1.1 connection of a WebSocket session (`crate::websocket`):
    /// the same route (TLS, proxy) as the pool's, but never offering h2, which has no
    /// upgrades.
    websocket: Connector,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream").field("base", &self.base).finish_non_exhaustive()
    }
}

impl Upstream {
    /// `threads`: the gateway's threads, each of which keeps its own idle connections.
    pub fn new(config: &UpstreamConfig, managed: bool, threads: usize) -> Result<Self, StartupError> {
        let plain_http = config.base_url.scheme() == "http";
        // HTTP/1.1 unless asked: one connection per in-flight request. Over HTTP/2 every
        // request shares one connection, and a server's SETTINGS_MAX_CONCURRENT_STREAMS
        // would cap minutes-long flex requests at that limit (hyperium/hyper#2197,
        // #3623). Over https the connector offers h2 by ALPN only when asked; over http
        // it is prior knowledge.
        let settings =
            PoolSettings { http2: config.http2, idle_timeout: POOL_IDLE_TIMEOUT, max_idle: POOL_MAX_IDLE, threads };
        let base: Uri = config.base_url.as_str().parse().map_err(|_| StartupError::UpstreamUri)?;
        let proxied = plain_http && config.proxy.is_some();
        let pool = Pool::new(Connector::new(config)?, &base, proxied, settings)?;
        let websocket = Connector::new(&UpstreamConfig { http2: false, ..config.clone() })?;
        let managed_auth = match (&config.api_key, managed) {
            (Some(key), true) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                    .map_err(|_| StartupError::UpstreamKey)?;
                value.set_sensitive(true);
                Some(value)
            }
            _ => None,
        };
        let proxy_auth = config.proxy.as_ref().filter(|_| plain_http).and_then(|p| p.auth.clone());
        let base = config.base_url.as_str().trim_end_matches('/').to_owned();
        Ok(Self { pool, base, managed_auth, proxy_auth, websocket })
    }

    /// The upstream URI for `rest` (the path after `/v1`, starting with `/`).
    pub fn uri(&self, rest: &str, query: Option<&str>) -> Result<Uri, http::uri::InvalidUri> {
        let mut url = String::with_capacity(self.base.len() + rest.len() + query.map_or(0, |q| q.len() + 1));
        url.push_str(&self.base);
        url.push_str(rest);
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        Uri::try_from(url)
    }

    /// Send one request; the managed key and proxy credentials are added here.
    ///
    /// The request is built from borrowed parts when a connection is ready (again, if it
    /// has to go on another one), so a waiting request does not keep a second copy of it.
    pub async fn send(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Response<PoolBody>, SendError> {
        let build = || {
            let mut headers = headers.clone();
            if let Some(auth) = &self.managed_auth {
                headers.insert(header::AUTHORIZATION, auth.clone());
            }
            if let Some(auth) = &self.proxy_auth {
                headers.insert(header::PROXY_AUTHORIZATION, auth.clone());
            }
            let mut request = Request::new(Full::new(body.clone()));
            *request.method_mut() = method.clone();
            *request.uri_mut() = uri.clone();
            *request.headers_mut() = headers;
            request
        };
        self.pool.send(uri, build).await
    }

    /// A new HTTP/1.1 connection of its own for a WebSocket session, with the upstream key
    /// (managed mode) and the forwarding proxy's credentials to add to its handshake.
    pub fn websocket_route(&self) -> (Connector, Option<&HeaderValue>, Option<&HeaderValue>) {
        (self.websocket.clone(), self.managed_auth.as_ref(), self.proxy_auth.as_ref())
    }

    /// Whether flexgate sends its own key (managed mode).
    pub fn is_managed(&self) -> bool {
        self.managed_auth.is_some()
    }
}
