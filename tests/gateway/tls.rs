//! TLS on the listener, on real sockets: a client that trusts the gateway's certificate
//! gets answers over HTTP/2 (by ALPN) and HTTP/1.1; an untrusted one is refused. Rotation
//! is tested on paused time beside the resolver (`src/tls/tests.rs`).

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::common::{spawn_gateway_with, spawn_sim};
use flexgate::sim::SimConfig;
use serde_json::json;

const NAME: &str = "flexgate.test";

fn pair() -> (String, String) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec![NAME.to_owned()]).expect("certificate");
    (cert.pem(), signing_key.serialize_pem())
}

fn client(addr: SocketAddr, cert_pem: &str, http1: bool) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem"))
        .resolve(NAME, addr);
    let builder = if http1 { builder.http1_only() } else { builder };
    builder.build().expect("client")
}

#[tokio::test]
async fn the_listener_serves_http2_and_http1_over_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = pair();
    let (cert_path, key_path) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_path, &cert).expect("cert");
    std::fs::write(&key_path, &key).expect("key");

    let (_sim, sim_run) = spawn_sim(SimConfig::default()).await;
    let toml = format!("[server]\ntls_cert = {:?}\ntls_key = {:?}\n", cert_path.display(), key_path.display());
    let (_state, gw) = spawn_gateway_with(sim_run.addr, &toml, &HashMap::new()).await;
    let url = format!("https://{NAME}:{}/v1/chat/completions", gw.addr.port());
    let body = json!({"model": "gpt-5-mini", "messages": [{"role": "user", "content": "hi"}]});

    for (http1, version) in [(false, reqwest::Version::HTTP_2), (true, reqwest::Version::HTTP_11)] {
        let response = client(gw.addr, &cert, http1)
            .post(&url)
            .bearer_auth("sk-test")
            .json(&body)
            .send()
            .await
            .expect("send over TLS");
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), version, "ALPN picks the protocol");
        let answer: serde_json::Value = response.json().await.expect("json");
        assert_eq!(answer["object"], "chat.completion");
    }

    // A client that does not trust the certificate is refused at the handshake.
    let (other, _) = pair();
    assert!(client(gw.addr, &other, false).post(&url).json(&body).send().await.is_err());
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::builder().no_proxy().build().expect("client");
    let answered = plain.get(format!("http://{}/healthz", gw.addr)).send().await.map(|r| r.status().as_u16());
    assert!(!matches!(answered, Ok(200)), "plain HTTP was served on the TLS listener: {answered:?}");
}
