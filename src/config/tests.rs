//! Config loading: shipped defaults, environment overrides, and every validation rule.

use std::collections::HashMap;
use std::time::Duration;

use super::{AuthConfig, Config, ConfigErrors, Escalate, LogFormat, SHIPPED_CONFIG};
use crate::budgets::{FailMode, OnSoft, Period};
use crate::tier::Tier;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn errors(text: &str) -> Vec<String> {
    errors_with(text, &env(&[]))
}

fn errors_with(text: &str, e: &HashMap<String, String>) -> Vec<String> {
    match Config::from_toml(text, e) {
        Ok(_) => Vec::new(),
        Err(ConfigErrors(v)) => v,
    }
}

#[test]
fn the_shipped_file_equals_the_defaults() {
    let e = env(&[]);
    let shipped = Config::from_toml(SHIPPED_CONFIG, &e).unwrap();
    let defaults = Config::from_toml("", &e).unwrap();
    assert_eq!(format!("{shipped:?}"), format!("{defaults:?}"));
    assert_eq!(shipped.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(shipped.server.max_body, 32 << 20);
    assert_eq!(shipped.server.drain_timeout, Duration::from_secs(30));
    assert_eq!(shipped.server.header_timeout, Duration::from_secs(30));
    assert_eq!(shipped.server.body_timeout, Duration::from_secs(30));
    assert_eq!(shipped.upstream.base_url.as_str(), "https://api.openai.com/v1");
    assert_eq!(shipped.upstream.timeout, Duration::from_secs(900));
    assert!(matches!(shipped.auth, AuthConfig::Passthrough));
    assert_eq!(shipped.log.format, LogFormat::Json);
    let bg = &shipped.classes[shipped.class_by_name("background").unwrap()];
    assert_eq!((bg.tier, bg.escalate, bg.max_attempts), (Tier::Flex, Escalate::Standard, 8));
    assert_eq!((bg.deadline, bg.escalate_reserve), (Duration::from_secs(900), Duration::from_secs(120)));
    assert_eq!(bg.path_prefix.as_deref(), Some("/flex/v1"));
    let it = &shipped.classes[shipped.class_by_name("interactive").unwrap()];
    assert_eq!((it.tier, it.deadline, it.path_prefix.as_deref()), (Tier::Standard, Duration::from_secs(600), None));
}

#[test]
fn environment_overrides() {
    let e = env(&[
        ("FLEXGATE_LISTEN", "127.0.0.1:9999"),
        ("FLEXGATE_UPSTREAM_URL", "http://sim:8081/v1/"),
        ("OPENAI_API_KEY", "sk-secret"),
    ]);
    let c = Config::from_toml("[server]\nlisten = \"0.0.0.0:1\"\n", &e).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:9999");
    assert_eq!(c.upstream.base_url.as_str(), "http://sim:8081/v1");
    assert_eq!(c.upstream.api_key.as_ref().map(super::Secret::expose), Some("sk-secret"));
    assert_eq!(c.store.dir, std::path::Path::new("flexgate-data"));
    let c = Config::from_toml("[store]\ndir = \"/a\"\n", &env(&[("FLEXGATE_DATA_DIR", "/var/lib/flexgate")])).unwrap();
    assert_eq!(c.store.dir, std::path::Path::new("/var/lib/flexgate"));
}

#[test]
fn the_store_dir_must_name_a_folder() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let text = format!("[store]\ndir = \"{}\"\n", file.path().display());
    let problems = errors(&text);
    assert!(
        problems.len() == 1 && problems[0].starts_with("`store.dir`: ") && problems[0].contains("not a folder"),
        "{problems:?}"
    );
    assert_eq!(errors("[store]\ndir = \" \"\n").len(), 1);
    let problems = errors("[batch]\nclass = \"nope\"\nmax_in_flight = 0\n");
    assert!(problems.iter().any(|p| p.starts_with("`batch.class`: unknown class `nope`")), "{problems:?}");
    assert!(problems.iter().any(|p| p.starts_with("`batch.max_in_flight`: ")), "{problems:?}");
    // A folder that does not exist yet is fine: it is created when first needed.
    assert!(errors("[store]\ndir = \"/nonexistent/flexgate\"\n").is_empty());
}

#[test]
fn unknown_keys_are_rejected() {
    let e = errors("[server]\nlisten = \"0.0.0.0:8080\"\nlisen = \"x\"\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].contains("lisen"), "{e:?}");
    assert!(!errors("[nonsense]\n").is_empty());
    assert!(!errors("[classes.x]\ntier = \"flex\"\ncolour = 1\n").is_empty());
}

#[test]
fn every_problem_is_reported_at_once_with_its_key() {
    let text = r#"
[server]
listen = "not an address"
max_body = "lots"
drain_timeout = "soon"
header_timeout = "0s"
body_timeout = "a while"
threads = -2
[upstream]
base_url = "ftp://example.com"
timeout = "0s"
[auth]
mode = "sometimes"
[routing]
default_class = "nope"
[classes.bad]
tier = "cheap"
escalate = "maybe"
max_attempts = 0
path_prefix = "flex"
[retry]
base_delay = "1m"
max_delay = "1s"
[log]
format = "xml"
level = "loud=="
"#;
    let e = errors(text);
    for key in [
        "`server.listen`",
        "`server.max_body`",
        "`server.drain_timeout`",
        "`server.header_timeout`",
        "`server.body_timeout`",
        "`server.threads`",
        "`upstream.base_url`",
        "`upstream.timeout`",
        "`auth.mode`",
        "`routing.default_class`",
        "`classes.bad.tier`",
        "`classes.bad.escalate`",
        "`classes.bad.max_attempts`",
        "`classes.bad.path_prefix`",
        "`retry.base_delay`",
        "`log.format`",
        "`log.level`",
    ] {
        assert!(e.iter().any(|p| p.starts_with(key)), "missing {key} in {e:#?}");
    }
}

#[test]
fn class_rules() {
    let e = errors(
        "[classes.a]\ntier = \"flex\"\ndeadline = \"1m\"\nescalate_reserve = \"2m\"\n[routing]\ndefault_class = \"a\"\nflex_class = \"a\"\nstandard_class = \"a\"\n",
    );
    assert!(e.iter().any(|p| p.starts_with("`classes.a.escalate_reserve`")), "{e:?}");
    let e = errors(
        "[classes.a]\ntier = \"flex\"\nmax_attempts = 1\n[routing]\ndefault_class = \"a\"\nflex_class = \"a\"\nstandard_class = \"a\"\n",
    );
    assert!(e.iter().any(|p| p.starts_with("`classes.a.max_attempts`")), "{e:?}");
    let e = errors(
        "[classes.a]\ntier = \"standard\"\npath_prefix = \"/v1\"\n[classes.b]\ntier = \"flex\"\npath_prefix = \"/x/v1\"\n[classes.c]\ntier = \"flex\"\npath_prefix = \"/x/v1\"\n[routing]\ndefault_class = \"a\"\nflex_class = \"b\"\nstandard_class = \"a\"\n",
    );
    assert!(e.iter().any(|p| p.starts_with("`classes.a.path_prefix`") && p.contains("served by flexgate")), "{e:?}");
    assert!(e.iter().any(|p| p.starts_with("`classes.c.path_prefix`") && p.contains("another class")), "{e:?}");
    assert!(errors("[classes.a]\ndeadline = \"1m\"\n[routing]\ndefault_class = \"a\"\nflex_class = \"a\"\nstandard_class = \"a\"\n").iter().any(|p| p.starts_with("`classes.a.tier`")));
}

#[test]
fn managed_auth_rules() {
    let e = errors("[auth]\nmode = \"managed\"\n");
    assert!(e.iter().any(|p| p.starts_with("`auth.keys`")), "{e:?}");
    assert!(e.iter().any(|p| p.starts_with("`upstream.api_key_env`")), "{e:?}");
    let text = "[auth]\nmode = \"managed\"\n[[auth.keys]]\nclient = \"a\"\nsha256 = \"abc\"\n[[auth.keys]]\nclient = \"a\"\nenv = \"MISSING_KEY\"\n[[auth.keys]]\nclient = \"c\"\n";
    let e = errors_with(text, &env(&[("OPENAI_API_KEY", "sk-up")]));
    assert!(e.iter().any(|p| p.starts_with("`auth.keys[0].sha256`")), "{e:?}");
    assert!(e.iter().any(|p| p.starts_with("`auth.keys[1].client`")), "{e:?}");
    assert!(e.iter().any(|p| p.starts_with("`auth.keys[1].env`") && p.contains("MISSING_KEY")), "{e:?}");
    assert!(e.iter().any(|p| p.starts_with("`auth.keys[2]`")), "{e:?}");
    let ok = format!("[auth]\nmode = \"managed\"\n[[auth.keys]]\nclient = \"a\"\nsha256 = \"{}\"\n", "ab".repeat(32));
    assert!(errors_with(&ok, &env(&[("OPENAI_API_KEY", "sk-up")])).is_empty());
}

#[test]
fn rules_are_checked() {
    let text = "[[routing.rules]]\nclass = \"ghost\"\n[[routing.rules]]\nclass = \"background\"\nheader = \"no colon\"\n[[routing.rules]]\nclass = \"background\"\nclient = \"x\"\n";
    let e = errors(text);
    assert!(e.iter().any(|p| p.starts_with("`routing.rules[0].class`") && p.contains("ghost")), "{e:?}");
    assert!(e.iter().any(|p| p.starts_with("`routing.rules[0]`")), "{e:?}");
    assert!(e.iter().any(|p| p.starts_with("`routing.rules[1].header`")), "{e:?}");
    assert!(e.iter().any(|p| p.starts_with("`routing.rules[2].client`")), "{e:?}");
}

#[test]
fn secrets_never_print() {
    let e = env(&[("OPENAI_API_KEY", "sk-very-secret"), ("GW", "gw-very-secret")]);
    let c = Config::from_toml("[auth]\nmode = \"managed\"\n[[auth.keys]]\nclient = \"a\"\nenv = \"GW\"\n", &e).unwrap();
    let shown = format!("{c:?}\n{}", c.summary());
    assert!(!shown.contains("sk-very-secret") && !shown.contains("gw-very-secret"), "{shown}");
}

#[test]
fn a_bad_pricing_file_is_reported_under_its_key() {
    let dir = std::env::temp_dir().join(format!("flexgate-pricing-{}", std::process::id()));
    std::fs::write(&dir, "[models.\"m\".standard]\ninput = \"-1\"\n").unwrap();
    let e = errors(&format!("[pricing]\nfile = \"{}\"\n", dir.display()));
    let _ = std::fs::remove_file(&dir);
    assert!(!e.is_empty() && e.iter().all(|p| p.starts_with("`pricing.file`")), "{e:?}");
    let e = errors("[pricing]\nfile = \"/nonexistent/prices.toml\"\n");
    assert!(e[0].starts_with("`pricing.file`"), "{e:?}");
}

#[test]
fn client_timeouts_must_be_positive_durations() {
    for key in ["header_timeout", "body_timeout"] {
        let e = errors(&format!("[server]\n{key} = \"0s\"\n"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with(&format!("`server.{key}`")) && e[0].contains("greater than zero"), "{e:?}");
        let e = errors(&format!("[server]\n{key} = \"-5s\"\n"));
        assert!(e.len() == 1 && e[0].starts_with(&format!("`server.{key}`")), "{e:?}");
    }
    let c = Config::from_toml("[server]\nheader_timeout = \"250ms\"\nbody_timeout = \"1m 30s\"\n", &env(&[])).unwrap();
    assert_eq!((c.server.header_timeout, c.server.body_timeout), (Duration::from_millis(250), Duration::from_secs(90)));
}

#[test]
fn threads_default_to_one_per_cpu_and_must_be_a_sensible_count() {
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert_eq!(Config::from_toml("", &env(&[])).unwrap().server.threads, cpus);
    assert_eq!(Config::from_toml("[server]\nthreads = 0\n", &env(&[])).unwrap().server.threads, cpus);
    assert_eq!(Config::from_toml("[server]\nthreads = 4\n", &env(&[])).unwrap().server.threads, 4);
    for bad in ["-1", "1025"] {
        let e = errors(&format!("[server]\nthreads = {bad}\n"));
        assert!(
            e.len() == 1 && e[0].contains("`server.threads`") && e[0].contains("0 (one per CPU) to 1024"),
            "{bad}: {e:?}"
        );
    }
    // The wrong type is a parse error naming the key.
    let e = errors("[server]\nthreads = \"two\"\n");
    assert!(e.iter().any(|m| m.contains("threads")), "{e:?}");
}

#[test]
fn tls_needs_both_files_and_a_pair_that_loads() {
    let only_cert = errors("[server]\ntls_cert = \"/x.crt\"\n");
    assert!(only_cert.iter().any(|e| e.starts_with("`server.tls_key`")), "{only_cert:?}");
    let only_key = errors("[server]\ntls_key = \"/x.key\"\n");
    assert!(only_key.iter().any(|e| e.starts_with("`server.tls_cert`")), "{only_key:?}");
    // `check-config` reads the files, as `serve` would.
    let missing = errors("[server]\ntls_cert = \"/nonexistent/x.crt\"\ntls_key = \"/nonexistent/x.key\"\n");
    assert!(missing.iter().any(|e| e.starts_with("`server.tls_cert`") && e.contains("x.crt")), "{missing:?}");
    assert!(Config::from_toml("[server]\ntls_cert = \"\"\ntls_key = \"\"\n", &env(&[])).unwrap().server.tls.is_none());
}

#[test]
fn a_managed_upstream_key_must_fit_in_a_header() {
    // `serve` sends it as `Authorization: Bearer <key>`: a stray newline used to pass
    // `check-config` and stop `serve`.
    let managed =
        format!("[auth]\nmode = \"managed\"\n[[auth.keys]]\nclient = \"a\"\nsha256 = \"{}\"\n", "ab".repeat(32));
    for bad in ["sk-secret\n", "sk-\u{1}secret"] {
        let e = errors_with(&managed, &env(&[("OPENAI_API_KEY", bad)]));
        assert!(e.len() == 1 && e[0].starts_with("`upstream.api_key_env`"), "{e:?}");
        assert!(e[0].contains("OPENAI_API_KEY") && !e[0].contains("secret"), "the key never prints: {e:?}");
    }
    // Passthrough mode never sends it: nothing to refuse.
    assert!(errors_with("", &env(&[("OPENAI_API_KEY", "sk-secret\n")])).is_empty());
}

#[test]
fn the_admin_listener_cannot_take_the_main_port() {
    for (listen, admin) in [("127.0.0.1:8080", "127.0.0.1:8080"), ("0.0.0.0:8080", "127.0.0.1:8080")] {
        let e = errors(&format!("[server]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\n"));
        assert!(e.len() == 1 && e[0].starts_with("`server.admin_listen`"), "{listen} {admin}: {e:?}");
    }
    for (listen, admin) in [("127.0.0.1:0", "127.0.0.1:0"), ("127.0.0.1:8080", "127.0.0.1:9090")] {
        let e = errors(&format!("[server]\nlisten = \"{listen}\"\nadmin_listen = \"{admin}\"\n"));
        assert!(e.is_empty(), "{listen} {admin}: {e:?}");
    }
}

#[test]
fn the_upstream_url_must_be_an_http_uri() {
    // A URL the `url` crate takes but `http::Uri` does not: `serve` used to be the first
    // to notice (with `upstream.proxy = "none"`; the proxy check noticed it otherwise).
    let long = format!("http://127.0.0.1:9/{}/v1", "a".repeat(70_000));
    for proxy in ["none", "env"] {
        let e = errors(&format!("[upstream]\nbase_url = \"{long}\"\nproxy = \"{proxy}\"\n"));
        assert!(e.len() == 1 && e[0].starts_with("`upstream.base_url`"), "{proxy}: {e:?}");
    }
}

#[test]
fn admission_defaults_and_every_problem() {
    let config = Config::from_toml("", &HashMap::new()).unwrap();
    assert!((config.admission.headroom - 0.2).abs() < 1e-12);
    assert_eq!(config.admission.flex.close_after, 5);
    assert!(config.summary().contains("admission=(headroom=0.2"), "{}", config.summary());
    let e = errors(
        "[admission]\nheadroom = 1.5\nflex_min_limit = 10\nflex_max_limit = 2\nflex_initial_limit = -1\n\
         flex_backoff_ratio = 1.0\nflex_cut_interval = \"soon\"\nflex_close_after = 0\nflex_probe_base = \"1m\"\n\
         flex_probe_max = \"1s\"\nthrottle_k = 0.5\nthrottle_window = \"0s\"\nretry_budget_ratio = -1.0\n\
         retry_budget_floor = nan\nretry_budget_window = \"x\"\n",
    );
    for key in [
        "headroom",
        "flex_min_limit",
        "flex_initial_limit",
        "flex_backoff_ratio",
        "flex_cut_interval",
        "flex_close_after",
        "flex_probe_base",
        "throttle_k",
        "throttle_window",
        "retry_budget_ratio",
        "retry_budget_floor",
        "retry_budget_window",
    ] {
        let key = format!("`admission.{key}`");
        assert!(e.iter().any(|p| p.starts_with(&key)), "missing {key} in {e:#?}");
    }
    assert!(errors("[admission]\nflex_limit = 3\n").iter().any(|p| p.contains("flex_limit")));
}

const MANAGED: &str = "[auth]\nmode = \"managed\"\n[[auth.keys]]\nclient = \"team-a\"\nenv = \"KEY_A\"\n";

fn managed_env() -> HashMap<String, String> {
    env(&[("OPENAI_API_KEY", "sk-up"), ("KEY_A", "fg-a")])
}

#[test]
fn budgets_are_read_in_nano_dollars_with_their_defaults() {
    let text = format!(
        "{MANAGED}[budgets.team-a]\nusd = \"250.5\"\nperiod = \"month\"\nsoft_usd = 200\non_soft = \"flex_only\"\n"
    );
    let c = Config::from_toml(&text, &managed_env()).unwrap();
    let b = &c.budgets[0];
    assert_eq!((b.client.as_str(), b.limit, b.soft), ("team-a", 250_500_000_000, Some(200_000_000_000)));
    assert_eq!((b.period, b.on_soft, b.fail), (Period::Month, OnSoft::FlexOnly, FailMode::Open));
    assert_eq!(b.reserve, 50_000_000);
    let hourly =
        format!("{MANAGED}[budgets.team-a]\nusd = 1.25\nperiod = \"1h\"\nfail = \"closed\"\nreserve_usd = \"0\"\n");
    let c = Config::from_toml(&hourly, &managed_env()).unwrap();
    assert_eq!((c.budgets[0].period, c.budgets[0].fail), (Period::Every(Duration::from_secs(3600)), FailMode::Closed));
    assert_eq!((c.budgets[0].limit, c.budgets[0].reserve), (1_250_000_000, 0));
}

#[test]
fn every_budget_problem_names_its_key() {
    let text = format!(
        "{MANAGED}[budgets.team-a]\nusd = \"-1\"\nperiod = \"fortnight\"\nsoft_usd = true\non_soft = \"deny\"\n\
         fail = \"ajar\"\n[budgets.team-b]\nusd = 5\n[budgets.team-c]\nperiod = \"day\"\nusd = 0\n"
    );
    let e = errors_with(&text, &managed_env());
    for key in [
        "`budgets.team-a.usd`",
        "`budgets.team-a.period`",
        "`budgets.team-a.soft_usd`",
        "`budgets.team-a.on_soft`",
        "`budgets.team-a.fail`",
        "`budgets.team-b`: no gateway key in `auth.keys` names client `team-b`",
        "`budgets.team-b.period`",
        "`budgets.team-c.usd`: must be greater than zero",
    ] {
        assert!(e.iter().any(|p| p.starts_with(key)), "{key} missing from {e:#?}");
    }
    let soft_over = format!("{MANAGED}[budgets.team-a]\nusd = 1\nperiod = \"day\"\nsoft_usd = 2\n");
    assert!(errors_with(&soft_over, &managed_env()).iter().any(|p| p.starts_with("`budgets.team-a.soft_usd`")));
    let no_soft = format!("{MANAGED}[budgets.team-a]\nusd = 1\nperiod = \"day\"\non_soft = \"flex_only\"\n");
    assert!(errors_with(&no_soft, &managed_env()).iter().any(|p| p.starts_with("`budgets.team-a.on_soft`")));
    let passthrough = "[budgets.team-a]\nusd = 1\nperiod = \"day\"\n";
    assert!(errors(passthrough).iter().any(|p| p.starts_with("`budgets.team-a`: budgets need clients")));
}
