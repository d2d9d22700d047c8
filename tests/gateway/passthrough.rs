//! Real sockets: an OpenAI client's requests pass through flexgate unchanged (bodies,
//! methods, query strings, multipart and binary), errors included.

use crate::common::{chat_body, client, stack};
use flexgate::sim::SimConfig;
use serde_json::Value;

#[tokio::test]
async fn chat_completion_round_trips_with_flexgate_headers() {
    let (sim, _s, _state, gw) = stack(SimConfig::zero_latency()).await;
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("sk-test")
        .json(&chat_body("gpt-5", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["x-flexgate-class"], "interactive");
    assert_eq!(h["x-flexgate-tier"], "standard");
    assert_eq!(h["x-flexgate-attempts"], "1");
    assert_eq!(h["x-flexgate-escalated"], "false");
    assert!(h.contains_key("x-flexgate-cost-usd"));
    assert!(h.contains_key("openai-processing-ms"), "end-to-end headers pass through");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["service_tier"], "default");
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let got = sim.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/v1/chat/completions");
    assert_eq!(got[0].service_tier, None, "a standard request without a tier is forwarded as sent");
    let auth = got[0].headers.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.as_str());
    assert_eq!(auth, Some("Bearer sk-test"), "passthrough auth forwards the client's key");
}

#[tokio::test]
async fn request_bodies_reach_the_upstream_byte_for_byte() {
    let (sim, _s, _state, gw) = stack(SimConfig::zero_latency()).await;
    // Odd spacing and key order must survive: the untouched body is forwarded verbatim.
    let body =
        "{ \"model\" : \"text-embedding-3-small\",\n  \"input\": [\"a\", \"b\"], \"encoding_format\":\"float\" }";
    let r = client()
        .post(gw.url("/v1/embeddings"))
        .bearer_auth("sk")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let got = sim.received();
    assert_eq!(got[0].body_sha256, hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body.as_bytes())));
}

#[tokio::test]
async fn get_with_query_string_and_models() {
    let (sim, _s, _state, gw) = stack(SimConfig::zero_latency()).await;
    let r = client().get(gw.url("/v1/models?limit=2&after=x")).bearer_auth("sk").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(sim.received()[0].query.as_deref(), Some("limit=2&after=x"));
    let r = client().get(gw.url("/v1/models/gpt-5")).bearer_auth("sk").send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn multipart_upload_binary_download_and_delete() {
    let (_sim, _s, _state, gw) = stack(SimConfig::zero_latency()).await;
    let payload: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let form = reqwest::multipart::Form::new()
        .text("purpose", "batch")
        .part("file", reqwest::multipart::Part::bytes(payload.clone()).file_name("input.jsonl"));
    let r = client().post(gw.url("/v1/files")).bearer_auth("sk").multipart(form).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let file: Value = r.json().await.unwrap();
    let id = file["id"].as_str().unwrap().to_owned();
    assert_eq!(file["bytes"], payload.len());
    let r = client().get(gw.url(&format!("/v1/files/{id}/content"))).bearer_auth("sk").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().to_vec(), payload, "binary bodies are returned unchanged");
    let r = client().delete(gw.url(&format!("/v1/files/{id}"))).bearer_auth("sk").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client().get(gw.url(&format!("/v1/files/{id}/content"))).bearer_auth("sk").send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn audio_speech_returns_binary() {
    let (_sim, _s, _state, gw) = stack(SimConfig::zero_latency()).await;
    let r = client()
        .post(gw.url("/v1/audio/speech"))
        .bearer_auth("sk")
        .json(&serde_json::json!({"model": "gpt-4o-mini-tts", "input": "hello there", "voice": "alloy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "audio/mpeg");
    assert!(!r.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn upstream_errors_pass_through_unchanged() {
    let (_sim, _s, _state, gw) = stack(SimConfig::zero_latency()).await;
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("sk")
        .json(&chat_body("no-such-model", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_found");
    // No key at all: the upstream's 401 comes back as it is.
    let r = client().post(gw.url("/v1/chat/completions")).json(&chat_body("gpt-5", false)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");
    // A scripted 400 with its OpenAI body.
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("sk")
        .header("x-sim-fault", "400")
        .json(&chat_body("gpt-5", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].is_string());
}

#[tokio::test]
async fn the_flex_lane_serves_every_path_too() {
    let (sim, _s, _state, gw) = stack(SimConfig::zero_latency()).await;
    let r = client().get(gw.url("/flex/v1/models")).bearer_auth("sk").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .post(gw.url("/flex/v1/chat/completions"))
        .bearer_auth("sk")
        .json(&chat_body("gpt-5", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-flexgate-class"], "background");
    assert_eq!(r.headers()["x-flexgate-tier"], "flex");
    let got = sim.received();
    assert_eq!(got[0].path, "/v1/models");
    assert_eq!(got[1].path, "/v1/chat/completions");
    assert_eq!(got[1].service_tier.as_deref(), Some("flex"));
}

#[tokio::test]
async fn empty_bodies_and_other_methods() {
    let (sim, _s, _state, gw) = stack(SimConfig::zero_latency()).await;
    let r = client().delete(gw.url("/v1/files/file-missing")).bearer_auth("sk").send().await.unwrap();
    assert_eq!(r.status(), 404);
    let got = sim.received();
    assert_eq!((got[0].method.as_str(), got[0].body_len), ("DELETE", 0));
}

/// `upstream.http2` picks the upstream protocol; off, every request gets its own
/// HTTP/1.1 connection (HTTP/2 would cap concurrent flex requests at the stream limit).
#[tokio::test]
async fn upstream_protocol_follows_upstream_http2() {
    let (sim, sim_run) = crate::common::spawn_sim(SimConfig::zero_latency()).await;
    for (toml, version) in [("", "HTTP/1.1"), ("[upstream]\nhttp2 = true", "HTTP/2.0")] {
        let (_state, gw) =
            crate::common::spawn_gateway_with(sim_run.addr, toml, &std::collections::HashMap::new()).await;
        let body = chat_body("gpt-5", true);
        for path in ["/v1/chat/completions", "/flex/v1/chat/completions"] {
            let r = client().post(gw.url(path)).bearer_auth("sk-test").json(&body).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert!(r.text().await.unwrap().ends_with("data: [DONE]\n\n"));
        }
        let got = sim.received();
        assert!(got.len() >= 2 && got[got.len() - 2..].iter().all(|r| r.version == version), "{toml:?}: {got:?}");
        gw.shutdown().await;
    }
}

/// h2c with prior knowledge (what the load driver speaks): plain and streamed requests
/// share one connection, and a shutdown lets an open h2 stream finish before the server
/// stops.
#[tokio::test]
async fn h2c_serves_plain_and_streamed_requests_and_drains_an_open_stream() {
    use futures_util::StreamExt;

    let sim = SimConfig { chunk_interval: std::time::Duration::from_millis(5), ..SimConfig::zero_latency() };
    let (_sim, _s, state, gw) = stack(sim).await;
    let h2 = reqwest::Client::builder().no_proxy().http2_prior_knowledge().build().unwrap();
    let url = gw.url("/v1/chat/completions");

    let r = h2.get(gw.url("/healthz")).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.version()), (200, reqwest::Version::HTTP_2));
    let r = h2.post(&url).bearer_auth("sk-test").json(&chat_body("gpt-5", false)).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.version()), (200, reqwest::Version::HTTP_2));
    assert_eq!(r.json::<Value>().await.unwrap()["object"], "chat.completion");

    let mut body = chat_body("gpt-5", true);
    body["max_tokens"] = serde_json::json!(200);
    let r = h2.post(&url).bearer_auth("sk-test").json(&body).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.version()), (200, reqwest::Version::HTTP_2));
    let mut stream = r.bytes_stream();
    let mut text = String::from_utf8(stream.next().await.unwrap().unwrap().to_vec()).unwrap();
    assert!(!text.contains("[DONE]"), "the stream ended before the shutdown: {text}");
    let stopped = tokio::spawn(gw.shutdown());
    while let Some(chunk) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(text.ends_with("data: [DONE]\n\n"), "the shutdown cut the stream: {text}");
    tokio::time::timeout(std::time::Duration::from_secs(10), stopped).await.expect("drained").unwrap();
    assert!(h2.get(&url).send().await.is_err(), "the listener is closed after the drain");
    assert!(state.metrics.render().contains("flexgate_inflight_requests{class=\"interactive\"} 0"));
}
