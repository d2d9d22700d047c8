//! The upstream client: one pooled reqwest client and the base URL every request goes to.
//!
//! flexgate only ever talks to `upstream.base_url`; request paths are appended to it
//! after the lane prefix is stripped, so a client cannot steer it to another host.

pub mod attempt;
pub mod backoff;
pub mod classify;
pub mod retry;

use http::HeaderValue;

use crate::config::UpstreamConfig;

#[derive(Debug, Clone)]
pub struct Upstream {
    client: reqwest::Client,
    /// `scheme://host[:port]/path` without a trailing slash.
    base: String,
    /// `Bearer <key>` for managed mode; marked sensitive so it is never logged.
    managed_auth: Option<HeaderValue>,
}

impl Upstream {
    pub fn new(config: &UpstreamConfig, managed: bool) -> Result<Self, String> {
        let builder = reqwest::Client::builder();
        // HTTP/1.1 unless asked: one connection per in-flight request. Over HTTP/2 every
        // request shares one connection and hyper queues requests past the server's
        // SETTINGS_MAX_CONCURRENT_STREAMS instead of opening another, which would cap
        // minutes-long flex requests at that limit (hyperium/hyper#2197, #3623).
        let builder = match (config.http2, config.base_url.scheme()) {
            (false, _) => builder.http1_only(),
            (true, "http") => builder.http2_prior_knowledge(),
            (true, _) => builder,
        };
        let client = builder
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(std::time::Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            // Redirects would let an upstream send us, and the key, elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let managed_auth = match (&config.api_key, managed) {
            (Some(key), true) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                    .map_err(|_| "the upstream key contains characters not allowed in a header".to_owned())?;
                value.set_sensitive(true);
                Some(value)
            }
            _ => None,
        };
        Ok(Self { client, base: config.base_url.as_str().trim_end_matches('/').to_owned(), managed_auth })
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The upstream URL for `rest` (the path after `/v1`, starting with `/`).
    pub fn url(&self, rest: &str, query: Option<&str>) -> String {
        let mut url = String::with_capacity(self.base.len() + rest.len() + query.map_or(0, |q| q.len() + 1));
        url.push_str(&self.base);
        url.push_str(rest);
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        url
    }

    /// The `Authorization` value to send in managed mode.
    pub fn managed_auth(&self) -> Option<&HeaderValue> {
        self.managed_auth.as_ref()
    }
}
