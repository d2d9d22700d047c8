//! Raw configuration as written in TOML: serde structs with `deny_unknown_fields`.
//!
//! Nothing here is validated beyond TOML syntax and types; `validate.rs` turns these
//! into the runtime [`super::Config`] and reports every problem at once. Every field
//! has a default so an empty file is a valid configuration.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub server: RawServer,
    pub upstream: RawUpstream,
    pub auth: RawAuth,
    pub routing: RawRouting,
    /// `None` means "use the shipped classes"; a table replaces them entirely.
    pub classes: Option<BTreeMap<String, RawClass>>,
    pub retry: RawRetry,
    pub admission: super::admission::RawAdmission,
    pub pricing: RawPricing,
    pub log: RawLog,
    pub websocket: RawWebsocket,
    /// `[budgets.CLIENT]`: spending limits per client of managed auth.
    pub budgets: BTreeMap<String, super::budgets::RawBudget>,
    pub store: RawStore,
    /// `[shared]`: state shared by replicas (a Redis URL).
    pub shared: super::shared::RawShared,
    pub batch: RawBatch,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: String,
    pub admin_listen: Option<String>,
    pub max_body: String,
    pub drain_timeout: String,
    pub header_timeout: String,
    pub body_timeout: String,
    /// Threads serving requests; 0 is one per CPU.
    pub threads: i64,
    /// PEM certificate chain and private key: TLS on the main listener when both are set.
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            admin_listen: None,
            max_body: "32MiB".into(),
            drain_timeout: "30s".into(),
            header_timeout: "30s".into(),
            body_timeout: "30s".into(),
            threads: 0,
            tls_cert: None,
            tls_key: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUpstream {
    pub base_url: String,
    pub timeout: String,
    pub connect_timeout: String,
    pub idle_timeout: String,
    pub http2: bool,
    /// `"env"`, `"none"` or an `http://` proxy URL.
    pub proxy: String,
    /// Environment variable holding the upstream key (managed mode).
    pub api_key_env: String,
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".into(),
            timeout: "15m".into(),
            connect_timeout: "10s".into(),
            idle_timeout: "5m".into(),
            http2: false,
            proxy: "env".into(),
            api_key_env: "OPENAI_API_KEY".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    pub mode: String,
    pub keys: Vec<RawGatewayKey>,
}

impl Default for RawAuth {
    fn default() -> Self {
        Self { mode: "passthrough".into(), keys: Vec::new() }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawGatewayKey {
    pub client: String,
    /// Hex SHA-256 of the key the client presents.
    pub sha256: Option<String>,
    /// Name of an environment variable holding the key itself.
    pub env: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRouting {
    pub honor_client_tier: bool,
    pub default_class: String,
    /// Class used when the client itself asks for `service_tier: "flex"`.
    pub flex_class: String,
    /// Class used when the client asks for `default` or `priority`.
    pub standard_class: String,
    pub rules: Vec<RawRule>,
}

impl Default for RawRouting {
    fn default() -> Self {
        Self {
            honor_client_tier: true,
            default_class: "interactive".into(),
            flex_class: "background".into(),
            standard_class: "interactive".into(),
            rules: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRule {
    pub class: String,
    pub client: Option<String>,
    pub model: Option<String>,
    /// `"name: value"`; matches when the request carries that header with that value.
    pub header: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawClass {
    pub tier: Option<String>,
    pub deadline: Option<String>,
    pub escalate: Option<String>,
    pub escalate_reserve: Option<String>,
    pub max_attempts: Option<i64>,
    pub path_prefix: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRetry {
    pub base_delay: String,
    pub max_delay: String,
    pub client_timeout_margin: String,
}

impl Default for RawRetry {
    fn default() -> Self {
        Self { base_delay: "500ms".into(), max_delay: "30s".into(), client_timeout_margin: "5s".into() }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPricing {
    /// A price table that replaces the embedded one.
    pub file: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    pub format: String,
    pub level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self { format: "json".into(), level: "info".into() }
    }
}

/// `[websocket]`: bounds on a tunnelled WebSocket session (`crate::websocket`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawWebsocket {
    pub idle_timeout: String,
    pub max_lifetime: String,
}

impl Default for RawWebsocket {
    fn default() -> Self {
        Self { idle_timeout: "10m".into(), max_lifetime: "65m".into() }
    }
}

/// `[store]`: where the embedded store keeps its database and file contents.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    pub dir: String,
}

impl Default for RawStore {
    fn default() -> Self {
        Self { dir: "flexgate-data".into() }
    }
}

/// `[batch]`: how the batches served under the background lane run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBatch {
    /// The class each line runs as; empty means `routing.flex_class`.
    pub class: String,
    /// Lines of one batch in flight at once.
    pub max_in_flight: i64,
}

impl Default for RawBatch {
    fn default() -> Self {
        Self { class: String::new(), max_in_flight: 64 }
    }
}

/// The classes flexgate ships with, used when the file has no `[classes]` table.
pub fn default_classes() -> BTreeMap<String, RawClass> {
    let mut classes = BTreeMap::new();
    classes.insert(
        "interactive".to_owned(),
        RawClass {
            tier: Some("standard".into()),
            deadline: Some("10m".into()),
            max_attempts: Some(3),
            ..RawClass::default()
        },
    );
    classes.insert(
        "background".to_owned(),
        RawClass {
            tier: Some("flex".into()),
            deadline: Some("15m".into()),
            escalate: Some("standard".into()),
            escalate_reserve: Some("2m".into()),
            max_attempts: Some(8),
            path_prefix: Some("/flex/v1".into()),
        },
    );
    classes
}
