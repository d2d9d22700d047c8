//! Real sockets: the upstream reached through an HTTP proxy (`upstream.proxy`), a
//! forwarding proxy for a plain-HTTP upstream and a `CONNECT` tunnel for an https one.

use std::collections::HashMap;

use crate::common::{chat_body, client, spawn_gateway_config, spawn_gateway_with, spawn_sim};
use crate::forward_proxy;
use flexgate::config::Config;
use flexgate::sim::SimConfig;

#[tokio::test]
async fn a_plain_http_upstream_goes_through_a_forwarding_proxy_with_its_credentials() {
    let (sim, sim_run) = spawn_sim(SimConfig::zero_latency()).await;
    let (proxy_addr, log) = forward_proxy::spawn(sim_run.addr).await;
    let toml = format!("[upstream]\nproxy = \"http://flex:se%40cret@{proxy_addr}\"");
    let (_state, gw) = spawn_gateway_with(sim_run.addr, &toml, &HashMap::new()).await;
    let r = client()
        .post(gw.url("/flex/v1/chat/completions"))
        .bearer_auth("sk-test")
        .json(&chat_body("gpt-5", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-flexgate-tier"], "flex");
    let heads = log.lock().clone();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let first_line = heads[0].lines().next().unwrap();
    assert_eq!(first_line, format!("POST http://{}/v1/chat/completions HTTP/1.1", sim_run.addr));
    // "flex:se@cret", the user info decoded, as Basic credentials.
    assert!(heads[0].to_lowercase().contains("proxy-authorization: basic zmxledpzzubjcmv0\r\n"), "{heads:?}");
    assert_eq!(sim.received().last().unwrap().service_tier.as_deref(), Some("flex"));
    gw.shutdown().await;

    // `none` connects directly, whatever else is configured.
    let (_state, gw) = spawn_gateway_with(sim_run.addr, "[upstream]\nproxy = \"none\"", &HashMap::new()).await;
    let r = client().get(gw.url("/v1/models")).bearer_auth("sk-test").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(log.lock().len(), 1, "the proxy saw no new connection");
    assert_eq!(sim.received().last().unwrap().path, "/v1/models");
}

#[tokio::test]
async fn an_https_upstream_is_tunnelled_with_connect_and_tls_starts_inside() {
    let (_sim, sim_run) = spawn_sim(SimConfig::zero_latency()).await;
    let (proxy_addr, heads) = forward_proxy::spawn(sim_run.addr).await;
    // The proxy's address comes from the environment, as in a corporate network.
    let env: HashMap<String, String> =
        [("HTTPS_PROXY".to_owned(), format!("http://flex:secret@{proxy_addr}"))].into_iter().collect();
    let toml = format!("[upstream]\nbase_url = \"https://{}/v1\"\n", sim_run.addr);
    let config = Config::from_toml(&toml, &env).unwrap();
    let (_state, gw) = spawn_gateway_config(config).await;
    let r = client().get(gw.url("/v1/models")).bearer_auth("sk-test").send().await.unwrap();
    // The tunnel reaches the simulator, which speaks plain HTTP: the TLS handshake inside
    // the tunnel fails, so the answer is flexgate's 502, in OpenAI's error shape.
    assert_eq!(r.status(), 502);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_unreachable", "{body}");
    // rustls's own words: the handshake got HTTP back, not a TLS record.
    assert!(body["error"]["message"].as_str().unwrap().contains("corrupt message"), "{body}");
    let heads = heads.lock().clone();
    assert!(!heads.is_empty());
    for head in &heads {
        assert!(head.starts_with(&format!("CONNECT {} HTTP/1.1\r\n", sim_run.addr)), "{head}");
        assert!(head.to_lowercase().contains("proxy-authorization: basic zmxledpzzwnyzxq=\r\n"), "{head}");
    }
}
