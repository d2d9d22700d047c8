//! Real sockets: managed auth. Clients present gateway keys; flexgate sends its own
//! upstream key; no key ever appears in a response, a log or a metric.

use std::collections::HashMap;

use crate::common::{chat_body, client, spawn_gateway_with, spawn_sim};
use flexgate::sim::SimConfig;
use serde_json::Value;
use sha2::Digest;

const UPSTREAM_KEY: &str = "sk-upstream-very-secret-0001";
const WEB_KEY: &str = "fg-web-key-0002";
const BATCH_KEY: &str = "fg-batch-key-0003";

async fn managed() -> (flexgate::sim::Sim, crate::common::Running, flexgate::state::AppState, crate::common::Running) {
    let (sim, s) = spawn_sim(SimConfig::zero_latency()).await;
    let env: HashMap<String, String> = [("OPENAI_API_KEY", UPSTREAM_KEY), ("WEB_KEY", WEB_KEY)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let toml = format!(
        "[auth]\nmode = \"managed\"\n[[auth.keys]]\nclient = \"web\"\nenv = \"WEB_KEY\"\n[[auth.keys]]\nclient = \"batch\"\nsha256 = \"{}\"\n[[routing.rules]]\nclass = \"background\"\nclient = \"batch\"\n",
        hex::encode(sha2::Sha256::digest(BATCH_KEY.as_bytes()))
    );
    let (state, gw) = spawn_gateway_with(s.addr, &toml, &env).await;
    (sim, s, state, gw)
}

async fn post(gw: &crate::common::Running, auth: Option<&str>) -> reqwest::Response {
    let mut r = client().post(gw.url("/v1/chat/completions")).json(&chat_body("gpt-5", false));
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn valid_keys_are_accepted_and_the_upstream_key_is_sent() {
    let (sim, _s, state, gw) = managed().await;
    let r = post(&gw, Some(&format!("Bearer {WEB_KEY}"))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-flexgate-class"], "interactive");
    let headers = format!("{:?}", r.headers());
    let text = format!("{headers}{}", r.text().await.unwrap());
    assert!(!text.contains(UPSTREAM_KEY) && !text.contains(WEB_KEY));
    let r = post(&gw, Some(&format!("bearer {BATCH_KEY}"))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-flexgate-class"], "background", "routing rules see the key's client name");
    for req in sim.received() {
        let auth: Vec<&str> =
            req.headers.iter().filter(|(k, _)| k == "authorization").map(|(_, v)| v.as_str()).collect();
        assert_eq!(auth, [format!("Bearer {UPSTREAM_KEY}").as_str()], "only flexgate's key goes upstream");
    }
    let metrics = state.metrics.render();
    assert!(!metrics.contains(UPSTREAM_KEY) && !metrics.contains(WEB_KEY) && !metrics.contains(BATCH_KEY));
}

#[tokio::test]
async fn missing_malformed_and_wrong_keys_are_401() {
    let (sim, _s, _state, gw) = managed().await;
    let cases = [
        None,
        Some("Basic d2ViOnB3"),
        Some("Bearer"),
        Some("Bearer "),
        Some(WEB_KEY),
        Some("Bearer fg-web-key-0001"),
        Some("Bearer sk-upstream-very-secret-0001"),
    ];
    for auth in cases {
        let r = post(&gw, auth).await;
        assert_eq!(r.status(), 401, "{auth:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "invalid_api_key", "{auth:?}");
        assert!(v["error"]["message"].as_str().unwrap().len() > 20);
        assert!(!v.to_string().contains(UPSTREAM_KEY));
    }
    assert!(sim.received().is_empty(), "nothing unauthenticated reaches the upstream");
}

#[tokio::test]
async fn health_and_metrics_need_no_key() {
    let (_sim, _s, _state, gw) = managed().await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(client().get(gw.url(path)).send().await.unwrap().status(), 200, "{path}");
    }
}

#[tokio::test]
async fn metrics_can_move_to_an_admin_listener() {
    let (_sim, s) = spawn_sim(SimConfig::zero_latency()).await;
    let mut config = flexgate::Config::for_upstream(&format!("http://{}/v1", s.addr)).unwrap();
    config.server.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = flexgate::Server::bind(config).await.unwrap();
    let main = server.local_addr().unwrap();
    let admin = server.admin_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    let c = client();
    assert_eq!(c.get(format!("http://{admin}/metrics")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(format!("http://{admin}/readyz")).send().await.unwrap().status(), 200);
    assert_eq!(
        c.get(format!("http://{main}/metrics")).send().await.unwrap().status(),
        404,
        "not on the public listener"
    );
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}
