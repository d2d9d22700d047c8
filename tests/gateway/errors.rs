//! Real sockets: every error flexgate produces is OpenAI-shaped and actionable, and bad
//! input never affects other requests.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::common::{chat_body, client, envelope, spawn_gateway, spawn_gateway_with, spawn_sim, stack};
use crate::memory::memory_stack;
use flexgate::sim::SimConfig;

#[tokio::test]
async fn body_over_the_limit_is_413_declared_or_chunked() {
    let (sim, sim_run) = spawn_sim(SimConfig::zero_latency()).await;
    let (_state, gw) = spawn_gateway_with(sim_run.addr, "[server]\nmax_body = \"1KiB\"\n", &HashMap::new()).await;
    let big = vec![b'x'; 4096];
    let r = client().post(gw.url("/v1/files")).bearer_auth("sk").body(big.clone()).send().await.unwrap();
    let (status, v) = envelope(r).await;
    assert_eq!(status, 413);
    assert_eq!(v["error"]["code"], "request_too_large");
    // Chunked: no content-length, the limit still holds.
    let chunks = futures_util::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 512])));
    let r = client()
        .post(gw.url("/v1/files"))
        .bearer_auth("sk")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(envelope(r).await.0, 413);
    assert!(sim.received().is_empty(), "nothing oversized reached the upstream");
}

#[tokio::test]
async fn unreachable_upstream_is_502() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (_state, gw) = spawn_gateway_with(closed, "[classes.interactive]\ntier = \"standard\"\nmax_attempts = 2\n[classes.background]\ntier = \"flex\"\npath_prefix = \"/flex/v1\"\n[retry]\nbase_delay = \"10ms\"\nmax_delay = \"20ms\"\n", &HashMap::new()).await;
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("sk")
        .json(&chat_body("gpt-5", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-flexgate-attempts"], "2");
    assert_eq!(r.headers()["x-should-retry"], "false");
    let (status, v) = envelope(r).await;
    assert_eq!(status, 502);
    assert_eq!(v["error"]["code"], "upstream_unreachable");
}

#[tokio::test(start_paused = true)]
async fn a_silent_upstream_is_504_at_the_deadline_not_later() {
    let s = memory_stack(SimConfig::zero_latency(), "");
    let started = Instant::now();
    let headers = [("x-sim-fault", "hang"), ("x-flexgate-deadline", "1s")];
    let r = s.post("/v1/chat/completions", &chat_body("gpt-5", false), &headers).await;
    let took = started.elapsed();
    let (status, v) = envelope(r).await;
    assert_eq!(status, 504);
    assert_eq!(v["error"]["code"], "deadline_exceeded");
    assert_eq!(took, Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn upstream_timeout_bounds_each_attempt() {
    let toml = "[upstream]\ntimeout = \"300ms\"\nconnect_timeout = \"100ms\"\n[retry]\nbase_delay = \"10ms\"\nmax_delay = \"10ms\"\n";
    let s = memory_stack(SimConfig::zero_latency(), toml);
    let started = Instant::now();
    let r = s.post("/v1/chat/completions", &chat_body("gpt-5", false), &[("x-sim-fault", "hang")]).await;
    // Three attempts of 300 ms each and two backoffs of at most 10 ms between them.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took <= Duration::from_millis(920), "{took:?}");
    assert_eq!(r.headers()["x-flexgate-attempts"], "3");
    let (status, v) = envelope(r).await;
    assert_eq!(status, 504);
    assert_eq!(v["error"]["code"], "upstream_timeout");
}

#[tokio::test]
async fn malformed_client_input_is_400_with_the_field_named() {
    let (sim, _s, _state, gw) = stack(SimConfig::zero_latency()).await;
    let cases: Vec<(&str, &str, Option<&str>)> = vec![
        ("{not json", "invalid_json", None),
        (r#"{"model": 42, "messages": []}"#, "invalid_value", Some("model")),
        (r#"{"model": "gpt-5", "stream": "yes"}"#, "invalid_value", Some("stream")),
        (r#"{"model": "gpt-5", "service_tier": "cheapest"}"#, "invalid_value", Some("service_tier")),
        (r#"{"model": "gpt-5", "stream_options": "on"}"#, "invalid_value", Some("stream_options")),
        ("[1,2,3]", "invalid_json", None),
    ];
    for (body, code, param) in cases {
        let r = client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth("sk")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, v) = envelope(r).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(v["error"]["code"], code, "{body}");
        if let Some(p) = param {
            assert_eq!(v["error"]["param"], p, "{body}");
        }
    }
    assert!(sim.received().is_empty(), "rejected requests never reach the upstream");
    // The gateway still serves everyone else.
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("sk")
        .json(&chat_body("gpt-5", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn routing_headers_are_validated() {
    let (_sim, _s, _state, gw) = stack(SimConfig::zero_latency()).await;
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("sk")
        .header("x-flexgate-class", "urgent")
        .json(&chat_body("gpt-5", false))
        .send()
        .await
        .unwrap();
    let (status, v) = envelope(r).await;
    assert_eq!(status, 400);
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("`background`") && message.contains("`interactive`"), "{message}");
    for bad in ["soon", "0s", "-1s"] {
        let r = client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth("sk")
            .header("x-flexgate-deadline", bad)
            .json(&chat_body("gpt-5", false))
            .send()
            .await
            .unwrap();
        let (status, v) = envelope(r).await;
        assert_eq!((status, v["error"]["code"].as_str()), (400, Some("invalid_deadline")), "{bad}");
    }
}

#[tokio::test]
async fn unknown_paths_and_path_tricks() {
    let (sim, _s, _state, gw) = stack(SimConfig::zero_latency()).await;
    let r = client().get(gw.url("/v2/models")).send().await.unwrap();
    assert_eq!(envelope(r).await.0, 404);
    // Raw requests: an HTTP client library would normalise these paths before sending.
    for path in ["/v1/../metrics", "/v1/./models", "/v1/%2e%2e/metrics", "/v1/files%2F..%2Fx", "/flex/v1/../../metrics"]
    {
        let answer = raw(
            gw.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert!(answer.contains("\"param\":\"path\""), "{answer}");
    }
    // Absolute-form targets name another host; flexgate still only talks to its upstream.
    let answer = raw(gw.addr, "GET http://evil.example/v1/models HTTP/1.1\r\nHost: evil.example\r\nAuthorization: Bearer sk\r\nConnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let got = sim.received();
    assert_eq!(got.len(), 1, "only the absolute-form request was forwarded, to the configured upstream");
    assert_eq!(got[0].path, "/v1/models");
}

async fn raw(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn health_endpoints() {
    let (_sim, s) = spawn_sim(SimConfig::zero_latency()).await;
    let (state, gw) = spawn_gateway(s.addr).await;
    assert_eq!(client().get(gw.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(client().get(gw.url("/readyz")).send().await.unwrap().status(), 200);
    state.start_draining();
    assert_eq!(client().get(gw.url("/readyz")).send().await.unwrap().status(), 503);
    assert_eq!(client().get(gw.url("/healthz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn request_ids_are_generated_forwarded_and_returned() {
    let (sim, _s, _state, gw) = stack(SimConfig::zero_latency()).await;
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("sk")
        .json(&chat_body("gpt-5", false))
        .send()
        .await
        .unwrap();
    let returned = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let sent = sim.received()[0].request_id.clone().unwrap();
    assert!(sent.starts_with("fg-"), "generated when absent: {sent}");
    assert_eq!(returned, sent, "the upstream's id comes back");
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("sk")
        .header("x-request-id", "my-trace-42")
        .json(&chat_body("gpt-5", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "my-trace-42");
    assert_eq!(sim.received()[1].request_id.as_deref(), Some("my-trace-42"));
    // Errors flexgate produces itself carry one too.
    let r = client().get(gw.url("/nope")).send().await.unwrap();
    assert!(r.headers()["x-request-id"].to_str().unwrap().starts_with("fg-"));
}

#[tokio::test]
async fn hop_by_hop_and_flexgate_headers_are_not_forwarded() {
    let (sim, _s, _state, gw) = stack(SimConfig::zero_latency()).await;
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("sk")
        .header("x-flexgate-deadline", "60s")
        .header("x-flexgate-class", "interactive")
        .header("connection", "keep-alive, x-private-hop")
        .header("x-private-hop", "1")
        .header("te", "trailers")
        .header("openai-organization", "org-1")
        .json(&chat_body("gpt-5", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("transfer-encoding").is_none_or(|v| v == "chunked"));
    let headers: Vec<String> = sim.received()[0].headers.iter().map(|(k, _)| k.clone()).collect();
    for banned in ["x-flexgate-deadline", "x-flexgate-class", "x-private-hop", "te"] {
        assert!(!headers.iter().any(|h| h == banned), "{banned} was forwarded: {headers:?}");
    }
    assert!(headers.iter().any(|h| h == "openai-organization"));
}
