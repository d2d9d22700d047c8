//! Validated runtime configuration and the one way to load it.
//!
//! Loading goes raw TOML → [`raw::RawConfig`] → environment overrides → [`validate()`],
//! which reports every problem at once. The environment is injected through [`Env`] so
//! tests never mutate the process environment.

mod admission;
mod budgets;
mod forward_proxy;
pub mod raw;
mod shared;
mod size;
mod validate;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::pricing::PriceTable;
use crate::tier::Tier;

pub use forward_proxy::ForwardProxy;
pub use shared::SharedConfig;
pub use size::parse_size;
pub use validate::validate;

/// The configuration file shipped in the repository; every key with its default.
pub const SHIPPED_CONFIG: &str = include_str!("../config/flexgate.toml");

/// A source of environment variables.
pub trait Env {
    fn get(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl<S: std::hash::BuildHasher> Env for HashMap<String, String, S> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

/// A string that must never be printed: `Debug` and `Display` show `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Every problem found in a configuration, each naming its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<String>);

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub auth: AuthConfig,
    pub routing: RoutingConfig,
    pub classes: Vec<Class>,
    pub retry: RetryConfig,
    pub admission: crate::admission::Settings,
    pub pricing: Arc<PriceTable>,
    pub log: LogConfig,
    pub websocket: WebsocketConfig,
    /// `[budgets.CLIENT]`, one per budgeted client.
    pub budgets: Vec<crate::budgets::BudgetLimits>,
    pub store: StoreConfig,
    /// `[shared]`: the Redis budgets are shared through; `None` keeps every count local.
    pub shared: Option<SharedConfig>,
    pub batch: BatchConfig,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    pub max_body: usize,
    pub drain_timeout: Duration,
    /// Time a client has to send a request head (and, on a new connection, to start one).
    pub header_timeout: Duration,
    /// Longest silence allowed while reading a request body.
    pub body_timeout: Duration,
    /// Threads serving requests, each its own current-thread runtime (`crate::runtime`);
    /// `server.threads = 0` (the default) resolves to one per CPU here.
    pub threads: usize,
    /// TLS on the main listener (`server.tls_cert` and `server.tls_key`); plain HTTP when
    /// `None`. The admin listener stays plain.
    pub tls: Option<crate::tls::TlsFiles>,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Always ends without a trailing slash, e.g. `https://api.openai.com/v1`.
    pub base_url: url::Url,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub idle_timeout: Duration,
    /// Speak HTTP/2 upstream (ALPN over https, prior knowledge over http). Off by default:
    /// hyper never opens a second HTTP/2 connection when the server's stream limit is
    /// reached, so minutes-long flex requests would queue behind ~100 open streams.
    pub http2: bool,
    /// The HTTP proxy the upstream is reached through (`upstream.proxy`), if any.
    pub proxy: Option<ForwardProxy>,
    /// The key flexgate sends upstream in managed mode.
    pub api_key: Option<Secret>,
}

#[derive(Debug, Clone)]
pub enum AuthConfig {
    /// The client's own `Authorization` header goes upstream.
    Passthrough,
    /// Clients present a gateway key; flexgate sends its own upstream key.
    Managed { keys: Vec<GatewayKey> },
}

#[derive(Clone)]
pub struct GatewayKey {
    pub client: String,
    pub sha256: [u8; 32],
}

impl fmt::Debug for GatewayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayKey").field("client", &self.client).field("sha256", &"<redacted>").finish()
    }
}

/// Index into [`Config::classes`].
pub type ClassId = usize;

#[derive(Debug, Clone)]
pub struct RoutingConfig {
    pub honor_client_tier: bool,
    pub default_class: ClassId,
    pub flex_class: ClassId,
    pub standard_class: ClassId,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub class: ClassId,
    pub client: Option<String>,
    pub model: Option<String>,
    /// Lower-cased header name and the exact value it must carry.
    pub header: Option<(http::HeaderName, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escalate {
    Standard,
    Never,
}

#[derive(Debug, Clone)]
pub struct Class {
    pub name: String,
    /// `name` as the `x-flexgate-class` value, built once (`None` if not header-safe).
    pub header: Option<http::HeaderValue>,
    pub tier: Tier,
    pub deadline: Duration,
    pub escalate: Escalate,
    pub escalate_reserve: Duration,
    pub max_attempts: u32,
    /// e.g. `/flex/v1`: requests under it are forwarded as `/v1/...` with this class.
    pub path_prefix: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RetryConfig {
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub client_timeout_margin: Duration,
}

/// Bounds on one tunnelled WebSocket session.
#[derive(Debug, Clone, Copy)]
pub struct WebsocketConfig {
    /// A session with no byte in either direction for this long is closed.
    pub idle_timeout: Duration,
    /// A session is closed this long after its handshake, whatever it is doing.
    pub max_lifetime: Duration,
}

/// The embedded store (`crate::store`).
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `store.dir` (env `FLEXGATE_DATA_DIR`): the database and the folder of file contents.
    pub dir: PathBuf,
}

/// How batches run (`crate::batch`).
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// `batch.class` (default `routing.flex_class`): the class each line runs as.
    pub class: ClassId,
    /// `batch.max_in_flight`: lines of one batch in flight at once.
    pub max_in_flight: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

impl Config {
    /// Load from `path` (or `FLEXGATE_CONFIG`, or the built-in defaults), apply the
    /// environment overrides and validate.
    pub fn load(path: Option<&Path>, env: &dyn Env) -> Result<Config, ConfigErrors> {
        let path: Option<PathBuf> =
            path.map(Path::to_path_buf).or_else(|| env.get("FLEXGATE_CONFIG").map(PathBuf::from));
        let text = match &path {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| ConfigErrors(vec![format!("cannot read config file `{}`: {e}", p.display())]))?,
            None => String::new(),
        };
        Self::from_toml(&text, env)
    }

    /// Parse TOML text, apply the environment overrides and validate.
    pub fn from_toml(text: &str, env: &dyn Env) -> Result<Config, ConfigErrors> {
        let mut raw: raw::RawConfig =
            toml::from_str(text).map_err(|e| ConfigErrors(vec![format!("TOML: {}", e.to_string().trim_end())]))?;
        apply_env(&mut raw, env);
        validate(&raw, env)
    }

    /// A configuration for tests and the demo: defaults pointed at `upstream`.
    pub fn for_upstream(upstream: &str) -> Result<Config, ConfigErrors> {
        let env: HashMap<String, String> = HashMap::new();
        let text = format!(
            "[upstream]\nbase_url = \"{upstream}\"\n[server]\nlisten = \"127.0.0.1:0\"\n[log]\nformat = \"pretty\"\n"
        );
        Self::from_toml(&text, &env)
    }

    pub fn class(&self, id: ClassId) -> &Class {
        &self.classes[id]
    }

    pub fn class_by_name(&self, name: &str) -> Option<ClassId> {
        self.classes.iter().position(|c| c.name == name)
    }

    /// The effective configuration as TOML-ish lines, secrets redacted, for the startup log.
    pub fn summary(&self) -> String {
        let classes: Vec<String> = self
            .classes
            .iter()
            .map(|c| {
                format!(
                    "{}(tier={}, deadline={}, escalate={:?}, reserve={}, max_attempts={}, prefix={})",
                    c.name,
                    c.tier.as_str(),
                    humantime::format_duration(c.deadline),
                    c.escalate,
                    humantime::format_duration(c.escalate_reserve),
                    c.max_attempts,
                    c.path_prefix.as_deref().unwrap_or("-")
                )
            })
            .collect();
        let auth = match &self.auth {
            AuthConfig::Passthrough => "passthrough".to_owned(),
            AuthConfig::Managed { keys } => format!("managed ({} gateway keys)", keys.len()),
        };
        let a = &self.admission;
        format!(
            "listen={} threads={} upstream={} auth={auth} store={} shared={} upstream_key={} classes=[{}] websocket(idle={}, lifetime={}) \
             admission=(headroom={}, flex_limit={}..{} from {}, close_after={}, probe={}..{}, retry_budget={}+{}/s)",
            self.server.listen,
            self.server.threads,
            self.upstream.base_url,
            self.store.dir.display(),
            self.shared.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string),
            if self.upstream.api_key.is_some() { "<set>" } else { "<unset>" },
            classes.join(", "),
            humantime::format_duration(self.websocket.idle_timeout),
            humantime::format_duration(self.websocket.max_lifetime),
            a.headroom,
            a.flex.min_limit,
            a.flex.max_limit,
            a.flex.initial_limit,
            a.flex.close_after,
            humantime::format_duration(a.flex.probe_base),
            humantime::format_duration(a.flex.probe_max),
            a.budget.ratio,
            a.budget.floor_per_sec,
        )
    }
}

/// `FLEXGATE_LISTEN`, `FLEXGATE_UPSTREAM_URL`, `FLEXGATE_DATA_DIR` and `FLEXGATE_REDIS_URL`
/// override the file.
fn apply_env(raw: &mut raw::RawConfig, env: &dyn Env) {
    if let Some(listen) = env.get("FLEXGATE_LISTEN") {
        raw.server.listen = listen;
    }
    if let Some(url) = env.get("FLEXGATE_UPSTREAM_URL") {
        raw.upstream.base_url = url;
    }
    if let Some(dir) = env.get("FLEXGATE_DATA_DIR") {
        raw.store.dir = dir;
    }
    if let Some(url) = env.get("FLEXGATE_REDIS_URL") {
        raw.shared.redis_url = Some(url);
    }
}

#[cfg(test)]
mod tests;
