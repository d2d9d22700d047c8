//! Why the gateway could not start once its configuration had validated.
//!
//! Validation (`crate::config`) reports every problem it can see in the text; what is
//! left is building the upstream client and binding the listeners. `check-config` builds
//! the same objects as `serve` (without binding), so whatever `serve` would refuse there,
//! `check-config` refuses too. Each message names the configuration key at fault.
//! Request-time failures are `crate::error::GatewayError`, not this.

use std::io;
use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// `upstream.base_url` is a URL, but not one an HTTP request can target.
    #[error("`upstream.base_url`: not a URI an HTTP request can target")]
    UpstreamUri,
    /// The upstream's host cannot be sent as the `Host` header.
    #[error("`upstream.base_url`: the host cannot be sent as a `Host` header")]
    UpstreamHost,
    /// The managed-mode upstream key cannot be sent in the `Authorization` header.
    #[error("`upstream.api_key_env`: the upstream key contains characters not allowed in an HTTP header")]
    UpstreamKey,
    /// rustls refused its own default settings (TLS to an `https` upstream).
    #[error("`upstream.base_url`: cannot set up TLS")]
    Tls(#[source] rustls::Error),
    /// The listener's certificate and key (`server.tls_cert`, `server.tls_key`) could not
    /// be served; validation loads them too, so this is a file changed since.
    #[error("`server.tls_cert`: {0}")]
    ListenerTls(crate::tls::TlsError),
    /// The metric families could not be registered: a bug, not a configuration problem.
    #[error("cannot register the metrics")]
    Metrics(#[source] prometheus::Error),
    /// The embedded store under `store.dir` could not be opened.
    #[error("`store.dir`: cannot open the store")]
    Store(#[source] crate::store::StoreError),
    /// A listener could not be bound (`server.listen` or `server.admin_listen`).
    #[error("`{key}`: cannot listen on {addr}")]
    Bind {
        key: &'static str,
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}
