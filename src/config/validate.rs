//! Raw → runtime configuration. Collects every problem, each naming its key in backticks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::raw::{RawClass, RawConfig, default_classes};
use super::{
    AuthConfig, BatchConfig, Class, ClassId, Config, ConfigErrors, Env, Escalate, GatewayKey, LogConfig, LogFormat,
    RetryConfig, RoutingConfig, Rule, Secret, ServerConfig, StoreConfig, UpstreamConfig, WebsocketConfig, parse_size,
};
use crate::pricing::PriceTable;
use crate::tier::Tier;

/// More serving threads than this is a typo, not a machine.
const MAX_THREADS: usize = 1024;
/// Paths flexgate serves itself; a class prefix may not shadow them.
const RESERVED_PATHS: [&str; 4] = ["/v1", "/metrics", "/healthz", "/readyz"];

/// Collects problems while validating; each carries its key.
struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, key: &str, message: impl std::fmt::Display) {
        self.0.push(format!("`{key}`: {message}"));
    }

    fn duration(&mut self, key: &str, text: &str) -> Duration {
        match humantime::parse_duration(text.trim()) {
            Ok(d) => d,
            Err(e) => {
                self.add(key, format_args!("`{text}` is not a duration such as `90s` or `15m` ({e})"));
                Duration::ZERO
            }
        }
    }

    fn positive_duration(&mut self, key: &str, text: &str) -> Duration {
        let d = self.duration(key, text);
        if d.is_zero() && humantime::parse_duration(text.trim()).is_ok() {
            self.add(key, "must be greater than zero");
        }
        d
    }

    fn addr(&mut self, key: &str, text: &str) -> SocketAddr {
        text.trim().parse().unwrap_or_else(|_| {
            self.add(key, format_args!("`{text}` is not an address such as `0.0.0.0:8080`"));
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }
}

/// `server.tls_cert` and `server.tls_key` go together, and the pair is loaded here so that
/// `check-config` refuses what the listener could not serve.
fn tls(p: &mut Problems, raw: &RawConfig) -> Option<crate::tls::TlsFiles> {
    let set = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(std::path::PathBuf::from);
    match (set(&raw.server.tls_cert), set(&raw.server.tls_key)) {
        (None, None) => None,
        (Some(_), None) => {
            p.add("server.tls_key", "must be set with `server.tls_cert`");
            None
        }
        (None, Some(_)) => {
            p.add("server.tls_cert", "must be set with `server.tls_key`");
            None
        }
        (Some(cert), Some(key)) => {
            let files = crate::tls::TlsFiles { cert, key };
            match crate::tls::load(&files) {
                Ok(_) => Some(files),
                Err(error) => {
                    p.add("server.tls_cert", error);
                    None
                }
            }
        }
    }
}

/// `[server]`: listeners, limits, timeouts, threads and TLS.
fn server(p: &mut Problems, raw: &RawConfig) -> ServerConfig {
    let server = ServerConfig {
        listen: p.addr("server.listen", &raw.server.listen),
        admin_listen: raw
            .server
            .admin_listen
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(|a| p.addr("server.admin_listen", a)),
        max_body: parse_size(&raw.server.max_body).unwrap_or_else(|e| {
            p.add("server.max_body", e);
            0
        }),
        drain_timeout: p.duration("server.drain_timeout", &raw.server.drain_timeout),
        header_timeout: p.positive_duration("server.header_timeout", &raw.server.header_timeout),
        body_timeout: p.positive_duration("server.body_timeout", &raw.server.body_timeout),
        threads: match usize::try_from(raw.server.threads) {
            // One per CPU the process may use (std reads the cgroup's CPU quota too).
            Ok(0) => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            Ok(n) if n <= MAX_THREADS => n,
            _ => {
                p.add("server.threads", format!("must be a whole number from 0 (one per CPU) to {MAX_THREADS}"));
                1
            }
        },
        tls: tls(p, raw),
    };
    if let Some(admin) = server.admin_listen.filter(|a| same_port(*a, server.listen)) {
        p.add("server.admin_listen", format_args!("`{admin}` is taken by `server.listen` ({})", server.listen));
    }
    if server.max_body == 0 && parse_size(&raw.server.max_body).is_ok() {
        p.add("server.max_body", "must be greater than zero");
    }
    server
}

pub fn validate(raw: &RawConfig, env: &dyn Env) -> Result<Config, ConfigErrors> {
    let mut p = Problems(Vec::new());

    let server = server(&mut p, raw);
    let upstream = upstream(&mut p, raw, env);
    let auth = auth(&mut p, raw, env);
    if matches!(auth, AuthConfig::Managed { .. }) {
        managed_key(&mut p, raw, env);
    }

    let raw_classes = raw.classes.clone().unwrap_or_else(default_classes);
    let classes: Vec<Class> = raw_classes.iter().map(|(name, c)| class(&mut p, name, c)).collect();
    if classes.is_empty() {
        p.add("classes", "at least one class is required");
    }
    check_prefixes(&mut p, &classes);
    let routing = routing(&mut p, raw, &classes, &auth);

    let retry = RetryConfig {
        base_delay: p.positive_duration("retry.base_delay", &raw.retry.base_delay),
        max_delay: p.positive_duration("retry.max_delay", &raw.retry.max_delay),
        client_timeout_margin: p.duration("retry.client_timeout_margin", &raw.retry.client_timeout_margin),
    };
    if retry.base_delay > retry.max_delay {
        p.add(
            "retry.base_delay",
            format_args!("({}) exceeds `retry.max_delay` ({})", raw.retry.base_delay, raw.retry.max_delay),
        );
    }

    // Durations are parsed into a list of their own: both callbacks need to record.
    let mut problems = Vec::new();
    let admission =
        super::admission::validate(&raw.admission, &mut |key, message| p.add(key, message), &mut |key, text| {
            let mut inner = Problems(Vec::new());
            let d = inner.positive_duration(key, text);
            problems.extend(inner.0);
            d
        });
    p.0.append(&mut problems);

    let pricing = pricing(&mut p, raw);
    let log = log(&mut p, raw);

    let websocket = websocket(&mut p, raw);
    let budgets = super::budgets::validate(&raw.budgets, &auth, &mut |key, message| p.add(key, message));
    let store = store(&mut p, raw);
    let shared = super::shared::validate(&raw.shared, &mut |key, message| p.add(key, message));
    let batch = batch(&mut p, raw, &classes, routing.flex_class);

    let (Some(upstream), true) = (upstream, p.0.is_empty()) else {
        return Err(ConfigErrors(p.0));
    };
    Ok(Config {
        server,
        upstream,
        auth,
        routing,
        classes,
        retry,
        admission,
        pricing,
        log,
        websocket,
        budgets,
        store,
        shared,
        batch,
    })
}

/// Whether listening on both would fail: the same port (not 0, which picks a free one)
/// on the same address, or on every address of the same family (a dual-stack `[::]` beside
/// an IPv4 address is left to the bind, which reports it with the key too).
fn same_port(a: SocketAddr, b: SocketAddr) -> bool {
    let overlap =
        a.ip() == b.ip() || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified()));
    a.port() == b.port() && a.port() != 0 && overlap
}

/// The upstream section; `None` when `upstream.base_url` is invalid (already reported).
fn upstream(p: &mut Problems, raw: &RawConfig, env: &dyn Env) -> Option<UpstreamConfig> {
    let text = raw.upstream.base_url.trim().trim_end_matches('/');
    let base_url = match url::Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            if u.query().is_some() || u.fragment().is_some() {
                p.add("upstream.base_url", "must not carry a query or fragment");
            }
            Some(u)
        }
        Ok(_) => {
            p.add("upstream.base_url", format_args!("`{text}` must be an http(s) URL with a host"));
            None
        }
        Err(e) => {
            p.add("upstream.base_url", format_args!("`{text}` is not a URL ({e})"));
            None
        }
    };
    // The pool sends requests to it as an `http::Uri`, which is stricter than a URL
    // (at most 65,534 characters, for one).
    let base_url = base_url.filter(|u| {
        let ok = u.as_str().parse::<http::Uri>().is_ok();
        if !ok {
            p.add("upstream.base_url", "is not a URI an HTTP request can target (too long?)");
        }
        ok
    });
    let timeout = p.positive_duration("upstream.timeout", &raw.upstream.timeout);
    let connect_timeout = p.positive_duration("upstream.connect_timeout", &raw.upstream.connect_timeout);
    let idle_timeout = p.positive_duration("upstream.idle_timeout", &raw.upstream.idle_timeout);
    if connect_timeout > timeout {
        p.add(
            "upstream.connect_timeout",
            format_args!("({}) exceeds `upstream.timeout` ({})", raw.upstream.connect_timeout, raw.upstream.timeout),
        );
    }
    let proxy = base_url.as_ref().and_then(|base| {
        super::forward_proxy::resolve(&raw.upstream.proxy, base, env).unwrap_or_else(|e| {
            p.add("upstream.proxy", e);
            None
        })
    });
    Some(UpstreamConfig {
        base_url: base_url?,
        timeout,
        connect_timeout,
        idle_timeout,
        http2: raw.upstream.http2,
        proxy,
        api_key: env.get(&raw.upstream.api_key_env).map(Secret::new),
    })
}

/// The key flexgate sends upstream in managed mode must be set and fit in the
/// `Authorization` header (`upstream::Upstream` sends it as `Bearer <key>`).
fn managed_key(p: &mut Problems, raw: &RawConfig, env: &dyn Env) {
    let var = &raw.upstream.api_key_env;
    match env.get(var) {
        None => p.add(
            "upstream.api_key_env",
            format_args!("`auth.mode = \"managed\"` needs the upstream key in the environment variable `{var}`"),
        ),
        // The message never repeats the key.
        Some(key) if http::HeaderValue::from_str(&format!("Bearer {key}")).is_err() => p.add(
            "upstream.api_key_env",
            format_args!(
                "the key in `{var}` contains characters an HTTP header cannot carry (a control character \
                 such as a trailing newline?)"
            ),
        ),
        Some(_) => {}
    }
}

fn auth(p: &mut Problems, raw: &RawConfig, env: &dyn Env) -> AuthConfig {
    match raw.auth.mode.as_str() {
        "passthrough" => {
            if !raw.auth.keys.is_empty() {
                p.add("auth.keys", "gateway keys are only used with `auth.mode = \"managed\"`");
            }
            AuthConfig::Passthrough
        }
        "managed" => {
            let mut keys = Vec::new();
            if raw.auth.keys.is_empty() {
                p.add("auth.keys", "`managed` mode needs at least one gateway key");
            }
            for (i, k) in raw.auth.keys.iter().enumerate() {
                let key = format!("auth.keys[{i}]");
                if k.client.trim().is_empty() {
                    p.add(&format!("{key}.client"), "must name the client");
                } else if raw.auth.keys[..i].iter().any(|o| o.client == k.client) {
                    p.add(&format!("{key}.client"), format_args!("`{}` is listed twice", k.client));
                }
                let sha256 = match (&k.sha256, &k.env) {
                    (Some(hexed), None) => decode_sha256(hexed).unwrap_or_else(|| {
                        p.add(&format!("{key}.sha256"), "must be 64 hex digits (the SHA-256 of the key)");
                        [0; 32]
                    }),
                    (None, Some(var)) => {
                        if let Some(value) = env.get(var) {
                            Sha256::digest(value.as_bytes()).into()
                        } else {
                            p.add(&format!("{key}.env"), format_args!("environment variable `{var}` is not set"));
                            [0; 32]
                        }
                    }
                    _ => {
                        p.add(&key, "give exactly one of `sha256` or `env`");
                        [0; 32]
                    }
                };
                keys.push(GatewayKey { client: k.client.clone(), sha256 });
            }
            AuthConfig::Managed { keys }
        }
        other => {
            p.add("auth.mode", format_args!("`{other}` is not one of `passthrough`, `managed`"));
            AuthConfig::Passthrough
        }
    }
}

fn decode_sha256(text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(text.trim()).ok()?;
    bytes.try_into().ok()
}

fn class(p: &mut Problems, name: &str, c: &RawClass) -> Class {
    let key = |field: &str| format!("classes.{name}.{field}");
    if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_') {
        p.add(&format!("classes.{name}"), "class names use letters, digits, `-` and `_`");
    }
    let tier = if let Some(text) = c.tier.as_deref() {
        Tier::from_config(text).unwrap_or_else(|| {
            p.add(&key("tier"), format_args!("`{text}` is not one of `flex`, `standard`, `priority`"));
            Tier::Standard
        })
    } else {
        p.add(&key("tier"), "is required");
        Tier::Standard
    };
    let deadline = c.deadline.as_deref().map_or(Duration::from_secs(600), |d| p.positive_duration(&key("deadline"), d));
    let escalate = match c.escalate.as_deref() {
        None | Some("standard") => Escalate::Standard,
        Some("never") => Escalate::Never,
        Some(other) => {
            p.add(&key("escalate"), format_args!("`{other}` is not one of `standard`, `never`"));
            Escalate::Never
        }
    };
    let escalate_reserve =
        c.escalate_reserve.as_deref().map_or(Duration::from_secs(120), |d| p.duration(&key("escalate_reserve"), d));
    if tier == Tier::Flex && escalate == Escalate::Standard && escalate_reserve >= deadline {
        p.add(
            &key("escalate_reserve"),
            "must be shorter than the class `deadline`, or the flex attempt never gets any time",
        );
    }
    let max_attempts = match c.max_attempts {
        None => 3,
        Some(n @ 1..=100) => u32::try_from(n).unwrap_or(3),
        Some(n) => {
            p.add(&key("max_attempts"), format_args!("{n} is outside 1..=100"));
            1
        }
    };
    if tier == Tier::Flex && escalate == Escalate::Standard && max_attempts < 2 {
        p.add(&key("max_attempts"), "a class that escalates needs at least 2 attempts (flex, then standard)");
    }
    let path_prefix = c.path_prefix.as_ref().map(|prefix| {
        let trimmed = prefix.trim_end_matches('/').to_owned();
        if !trimmed.starts_with('/') || !trimmed.ends_with("/v1") || trimmed.contains("..") || trimmed.contains("//") {
            p.add(
                &key("path_prefix"),
                format_args!("`{prefix}` must look like `/flex/v1` (start with `/`, end with `/v1`)"),
            );
        }
        trimmed
    });
    let header = http::HeaderValue::from_str(name).ok();
    Class { name: name.to_owned(), header, tier, deadline, escalate, escalate_reserve, max_attempts, path_prefix }
}

fn check_prefixes(p: &mut Problems, classes: &[Class]) {
    for (i, c) in classes.iter().enumerate() {
        let Some(prefix) = &c.path_prefix else { continue };
        if RESERVED_PATHS.contains(&prefix.as_str()) {
            p.add(&format!("classes.{}.path_prefix", c.name), format_args!("`{prefix}` is served by flexgate itself"));
        }
        if classes[..i].iter().any(|o| o.path_prefix.as_ref() == Some(prefix)) {
            p.add(&format!("classes.{}.path_prefix", c.name), format_args!("`{prefix}` is used by another class"));
        }
    }
}

fn class_ref(p: &mut Problems, key: &str, name: &str, classes: &[Class]) -> ClassId {
    classes.iter().position(|c| c.name == name).unwrap_or_else(|| {
        let names: Vec<&str> = classes.iter().map(|c| c.name.as_str()).collect();
        p.add(key, format_args!("unknown class `{name}` (classes: {})", names.join(", ")));
        0
    })
}

fn routing(p: &mut Problems, raw: &RawConfig, classes: &[Class], auth: &AuthConfig) -> RoutingConfig {
    let r = &raw.routing;
    let mut rules = Vec::new();
    for (i, rule) in r.rules.iter().enumerate() {
        let key = format!("routing.rules[{i}]");
        let class = class_ref(p, &format!("{key}.class"), &rule.class, classes);
        if rule.client.is_none() && rule.model.is_none() && rule.header.is_none() {
            p.add(&key, "a rule needs at least one of `client`, `model`, `header`");
        }
        if let (Some(client), AuthConfig::Managed { keys }) = (&rule.client, auth) {
            if !keys.iter().any(|k| &k.client == client) {
                p.add(&format!("{key}.client"), format_args!("no gateway key names client `{client}`"));
            }
        } else if rule.client.is_some() {
            p.add(&format!("{key}.client"), "client names exist only with `auth.mode = \"managed\"`");
        }
        let header = rule.header.as_ref().and_then(|h| {
            let parsed = h.split_once(':').and_then(|(name, value)| {
                let name = http::HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes()).ok()?;
                Some((name, value.trim().to_owned()))
            });
            if parsed.is_none() {
                p.add(&format!("{key}.header"), format_args!("`{h}` must look like `x-job-kind: enrichment`"));
            }
            parsed
        });
        rules.push(Rule { class, client: rule.client.clone(), model: rule.model.clone(), header });
    }
    RoutingConfig {
        honor_client_tier: r.honor_client_tier,
        default_class: class_ref(p, "routing.default_class", &r.default_class, classes),
        flex_class: class_ref(p, "routing.flex_class", &r.flex_class, classes),
        standard_class: class_ref(p, "routing.standard_class", &r.standard_class, classes),
        rules,
    }
}

fn pricing(p: &mut Problems, raw: &RawConfig) -> Arc<PriceTable> {
    let Some(file) = raw.pricing.file.as_deref().filter(|f| !f.is_empty()) else {
        return Arc::new(PriceTable::embedded());
    };
    let table = std::fs::read_to_string(file)
        .map_err(|e| vec![format!("cannot read `{file}`: {e}")])
        .and_then(|text| PriceTable::from_toml(&text).map_err(|e| e.0));
    match table {
        Ok(t) => Arc::new(t),
        Err(problems) => {
            for problem in problems {
                p.add("pricing.file", problem);
            }
            Arc::new(PriceTable::embedded())
        }
    }
}

fn log(p: &mut Problems, raw: &RawConfig) -> LogConfig {
    let log = LogConfig {
        format: match raw.log.format.as_str() {
            "json" => LogFormat::Json,
            "pretty" => LogFormat::Pretty,
            other => {
                p.add("log.format", format_args!("`{other}` is not one of `json`, `pretty`"));
                LogFormat::Json
            }
        },
        level: raw.log.level.clone(),
    };
    if tracing_subscriber::EnvFilter::try_new(&log.level).is_err() {
        p.add("log.level", format_args!("`{}` is not a level or filter such as `info` or `flexgate=debug`", log.level));
    }
    log
}

fn websocket(p: &mut Problems, raw: &RawConfig) -> WebsocketConfig {
    WebsocketConfig {
        idle_timeout: p.positive_duration("websocket.idle_timeout", &raw.websocket.idle_timeout),
        max_lifetime: p.positive_duration("websocket.max_lifetime", &raw.websocket.max_lifetime),
    }
}

/// `store.dir` must name a folder (or a path one can be created at). It is created when
/// first needed, not here: `check-config` leaves no folder behind.
fn store(p: &mut Problems, raw: &RawConfig) -> StoreConfig {
    let text = raw.store.dir.trim();
    let dir = std::path::PathBuf::from(text);
    if text.is_empty() {
        p.add("store.dir", "must name a folder such as `/var/lib/flexgate`");
    } else if dir.exists() && !dir.is_dir() {
        p.add("store.dir", format_args!("`{text}` exists and is not a folder"));
    }
    StoreConfig { dir }
}

/// `[batch]`: the class lines run as (default `routing.flex_class`) and the in-flight cap.
fn batch(p: &mut Problems, raw: &RawConfig, classes: &[Class], flex_class: ClassId) -> BatchConfig {
    let class = raw.batch.class.trim();
    let class = if class.is_empty() { flex_class } else { class_ref(p, "batch.class", class, classes) };
    let max_in_flight = usize::try_from(raw.batch.max_in_flight).ok().filter(|n| (1..=10_000).contains(n));
    if max_in_flight.is_none() {
        p.add("batch.max_in_flight", "must be a whole number from 1 to 10000");
    }
    BatchConfig { class, max_in_flight: max_in_flight.unwrap_or(1) }
}
