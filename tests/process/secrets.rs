//! Secrets and access: across every scenario (success, each upstream fault, bad input,
//! refused auth), the upstream key and the gateway keys appear in no log line, metric
//! or answer; managed auth cannot be bypassed; metrics can live on an admin listener.
//!
//! The gateway runs as the real binary at `log.level = "trace"`, so its whole log
//! output — flexgate's lines and those of its dependencies — is what gets scanned.

use std::fmt::Write as _;

use crate::process::Process;
use serde_json::{Value, json};
use sha2::Digest;

const UPSTREAM_KEY: &str = "sk-proj-UPSTREAM-7f3c9a1e5b2d8046";
const WEB_KEY: &str = "fgk-web-Q8r2Lm5Vx1Tz";
const BATCH_KEY: &str = "fgk-batch-Hn4Wp7Ks0Yd";
/// What a client sends in passthrough mode: its own OpenAI key.
const CLIENT_KEY: &str = "sk-proj-CLIENT-0d9e8f7a6b5c";

const COMMON: &str = "[server]\nlisten = \"127.0.0.1:0\"\nmax_body = \"64KiB\"\n\
    [retry]\nbase_delay = \"10ms\"\nmax_delay = \"50ms\"\n\
    [log]\nformat = \"json\"\nlevel = \"trace\"\n";

fn upstream(sim: &str) -> String {
    format!(
        "[upstream]\nbase_url = \"http://{sim}/v1\"\ntimeout = \"400ms\"\nconnect_timeout = \"300ms\"\nidle_timeout = \"300ms\"\n"
    )
}

fn managed_toml(sim: &str) -> String {
    format!(
        "{COMMON}{}[auth]\nmode = \"managed\"\n[[auth.keys]]\nclient = \"web\"\nenv = \"WEB_KEY\"\n\
         [[auth.keys]]\nclient = \"batch\"\nsha256 = \"{}\"\n[[routing.rules]]\nclass = \"background\"\nclient = \"batch\"\n",
        upstream(sim),
        hex::encode(sha2::Sha256::digest(BATCH_KEY))
    )
}

/// A request: path, JSON body, extra headers.
type Scenario = (&'static str, Value, Vec<(&'static str, &'static str)>);

/// Requests covering success, streaming, every scripted fault and bad input.
fn scenarios() -> Vec<Scenario> {
    let chat =
        |stream: bool| json!({"model": "gpt-5", "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
    let mut list = vec![
        ("/v1/chat/completions", chat(false), vec![]),
        ("/v1/chat/completions", chat(true), vec![]),
        ("/flex/v1/responses", json!({"model": "o3", "input": "hi", "stream": true}), vec![]),
        ("/v1/embeddings", json!({"model": "text-embedding-3-small", "input": "hi"}), vec![]),
        ("/v1/chat/completions", json!({"model": 42}), vec![]),
        ("/v1/chat/completions", chat(false), vec![("x-flexgate-deadline", "soon")]),
        ("/v1/chat/completions", chat(false), vec![("x-flexgate-class", "nope")]),
        ("/v1/chat/completions", json!({"model": "gpt-5", "pad": "x".repeat(70_000)}), vec![]),
        ("/v1/../metrics", chat(false), vec![]),
        ("/v2/nowhere", chat(false), vec![]),
        ("/v1/chat/completions", json!({"model": "no-such-model"}), vec![]),
        ("/v1/chat/completions", chat(false), vec![("x-sim-fault", "hang"), ("x-flexgate-deadline", "300ms")]),
    ];
    for (i, fault) in [
        "500",
        "502",
        "503",
        "400",
        "429-capacity",
        "429-rate",
        "429-slow-down",
        "429-quota",
        "429-credit",
        "429-spend",
        "cut",
        "stall",
        "malformed",
        "reset",
    ]
    .into_iter()
    .enumerate()
    {
        list.push(("/v1/chat/completions", chat(i % 2 == 0), vec![("x-sim-fault", fault)]));
    }
    list.push(("/flex/v1/chat/completions", chat(true), vec![("x-sim-fault", "flex:429-capacity")]));
    list
}

/// Authorization values that must all be refused in managed mode.
fn refused_auth() -> Vec<Option<String>> {
    let digest = hex::encode(sha2::Sha256::digest(WEB_KEY));
    [
        None,
        Some(String::new()),
        Some("Bearer".into()),
        Some("Bearer ".into()),
        Some(WEB_KEY.into()),
        Some(format!("Basic {WEB_KEY}")),
        Some(format!("Token {WEB_KEY}")),
        Some(format!("Bearer {WEB_KEY}x")),
        Some(format!("Bearer {}", &WEB_KEY[..WEB_KEY.len() - 1])),
        Some(format!("Bearer {}", WEB_KEY.to_uppercase())),
        Some(format!("Bearer {UPSTREAM_KEY}")),
        Some(format!("Bearer {digest}")),
        Some(format!("Bearer {WEB_KEY},{BATCH_KEY}")),
    ]
    .into_iter()
    .collect()
}

/// Send one request and append everything the client saw to `transcript`.
async fn record(
    transcript: &mut String,
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    headers: &[(&str, &str)],
    auth: Option<&str>,
) -> u16 {
    let mut request = client.post(url).json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let _ = writeln!(transcript, "{url} {status} {:?}", r.headers());
    transcript.push_str(&String::from_utf8_lossy(&r.bytes().await.unwrap_or_default()));
    status
}

fn assert_absent(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        // The distinctive tail too: a truncated or masked key must not show either.
        let tail = &secret[secret.len() - 10..];
        assert!(!text.contains(secret) && !text.contains(tail), "{secret} found in {what}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_appears_in_any_log_metric_or_answer_in_managed_mode() {
    let (_sim, sim) =
        Process::sim(&["--latency-standard", "0ms", "--latency-flex", "0ms", "--chunk-interval", "1ms"]).await;
    let env = [("OPENAI_API_KEY", UPSTREAM_KEY), ("WEB_KEY", WEB_KEY)];
    let (gw, addr) = Process::serve("managed", &managed_toml(&sim), &env).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut transcript = String::new();
    // The batch key's class is flex, where faults are retried for longer: it gets the
    // requests without scripted faults; the web key gets every one.
    for (key, all) in [(WEB_KEY, true), (BATCH_KEY, false)] {
        let auth = format!("Bearer {key}");
        for (path, body, headers) in scenarios().into_iter().filter(|(_, _, h)| all || h.is_empty()) {
            record(&mut transcript, &client, &format!("http://{addr}{path}"), &body, &headers, Some(&auth)).await;
        }
    }
    for auth in refused_auth() {
        let url = format!("http://{addr}/v1/chat/completions");
        let status = record(&mut transcript, &client, &url, &json!({"model": "gpt-5"}), &[], auth.as_deref()).await;
        assert_eq!(status, 401, "{auth:?}");
    }
    let metrics = client.get(format!("http://{addr}/metrics")).send().await.unwrap().text().await.unwrap();
    // Requests were really served and faulted, so the scan covered real work.
    let served = |outcome| crate::common::count(metrics.as_str(), "flexgate_requests_total", &[("outcome", outcome)]);
    assert!(served("success") > 0 && served("upstream_error") > 0, "{metrics}");
    let logs = gw.all.lock().join("\n");
    assert!(logs.contains("\"message\":\"request\""), "the request log was captured: {logs}");
    let digest = hex::encode(sha2::Sha256::digest(BATCH_KEY));
    for (what, text) in [("the log", &logs), ("/metrics", &metrics), ("the answers", &transcript)] {
        assert_absent(what, text, &[UPSTREAM_KEY, WEB_KEY, BATCH_KEY, &digest]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_key_in_passthrough_mode_is_forwarded_but_never_logged_or_echoed() {
    let (_sim, sim) =
        Process::sim(&["--latency-standard", "0ms", "--latency-flex", "0ms", "--chunk-interval", "1ms"]).await;
    let (gw, addr) = Process::serve("passthrough", &format!("{COMMON}{}", upstream(&sim)), &[]).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut transcript = String::new();
    let auth = format!("Bearer {CLIENT_KEY}");
    for (path, body, headers) in scenarios() {
        record(&mut transcript, &client, &format!("http://{addr}{path}"), &body, &headers, Some(&auth)).await;
    }
    let metrics = client.get(format!("http://{addr}/metrics")).send().await.unwrap().text().await.unwrap();
    let logs = gw.all.lock().join("\n");
    assert!(logs.contains("\"message\":\"request\""));
    for (what, text) in [("the log", &logs), ("/metrics", &metrics), ("the answers", &transcript)] {
        assert_absent(what, text, &[CLIENT_KEY]);
    }
    // It did go upstream, which is the point of passthrough.
    let received: Value = client.get(format!("http://{sim}/_sim/requests")).send().await.unwrap().json().await.unwrap();
    assert!(received.to_string().contains(CLIENT_KEY));
}

async fn managed_in_process(admin: bool) -> (flexgate::sim::Sim, crate::common::Running, flexgate::Server) {
    let (sim, sim_run) = crate::common::spawn_sim(flexgate::sim::SimConfig::zero_latency()).await;
    let env: std::collections::HashMap<String, String> = [("OPENAI_API_KEY", UPSTREAM_KEY), ("WEB_KEY", WEB_KEY)]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    let mut config = flexgate::Config::from_toml(&managed_toml(&sim_run.addr.to_string()), &env).unwrap();
    if admin {
        config.server.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    }
    (sim, sim_run, flexgate::Server::bind(config).await.unwrap())
}

/// Every way around the gateway key ends in a 401 before routing, so an unauthenticated
/// client learns nothing about paths, classes or the upstream.
#[tokio::test]
async fn managed_auth_cannot_be_bypassed() {
    let (sim, _sim_run, server) = managed_in_process(false).await;
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let c = crate::common::client();
    let url = |path: &str| format!("http://{addr}{path}");
    let body = json!({"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]});
    // No key, on every kind of path: all 401, none forwarded.
    for path in [
        "/v1/chat/completions",
        "/flex/v1/responses",
        "/v1/models",
        "/v2/nowhere",
        "/v1/files%2Fx",
        "/healthz/x",
        "/metricsx",
    ] {
        let r = c.post(url(path)).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "invalid_api_key", "{path}");
    }
    // The key in the wrong place.
    let r = c.post(url("/v1/chat/completions")).header("api-key", WEB_KEY).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = c.post(url(&format!("/v1/chat/completions?api_key={WEB_KEY}"))).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Not text.
    let bad = http::HeaderValue::from_bytes(b"Bearer fgk-\xff\xfe").unwrap();
    let r = c.post(url("/v1/chat/completions")).header("authorization", bad).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Two Authorization headers: the first decides; a wrong first one is not rescued.
    let r = c
        .post(url("/v1/chat/completions"))
        .header("authorization", "Bearer wrong")
        .header("authorization", format!("Bearer {WEB_KEY}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(sim.received().is_empty(), "nothing unauthenticated reached the upstream");
    // A valid first key with a second one: served, and only flexgate's key goes upstream.
    let r = c
        .post(url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {WEB_KEY}"))
        .header("authorization", "Bearer sk-client-tries-its-own")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sent: Vec<String> =
        sim.received()[0].headers.iter().filter(|(k, _)| k == "authorization").map(|(_, v)| v.clone()).collect();
    assert_eq!(sent, [format!("Bearer {UPSTREAM_KEY}")]);
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

/// With `server.admin_listen`, metrics and health move to their own address: the public
/// listener does not serve `/metrics` even to a valid key, and the admin listener
/// forwards nothing.
#[tokio::test]
async fn the_admin_listener_serves_only_health_and_metrics() {
    let (sim, _sim_run, server) = managed_in_process(true).await;
    let (main, admin) = (server.local_addr().unwrap(), server.admin_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let c = crate::common::client();
    for path in ["/metrics", "/healthz", "/readyz"] {
        let r = c.get(format!("http://{admin}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "admin {path}");
    }
    let r = c.get(format!("http://{main}/metrics")).bearer_auth(WEB_KEY).send().await.unwrap();
    assert_eq!(r.status(), 404, "metrics are not on the public listener");
    assert_eq!(c.get(format!("http://{main}/metrics")).send().await.unwrap().status(), 401);
    for path in ["/v1/models", "/v1/chat/completions"] {
        let r = c
            .post(format!("http://{admin}{path}"))
            .bearer_auth(WEB_KEY)
            .json(&json!({"model": "gpt-5"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "admin {path}");
    }
    assert!(sim.received().is_empty(), "the admin listener never forwards");
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
