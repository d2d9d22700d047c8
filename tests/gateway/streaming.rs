//! Real sockets: server-sent events are forwarded as they arrive, usage is metered, and a
//! broken or abandoned stream ends cleanly on both sides.

use std::time::Duration;

use crate::common::{chat_body, client, count, metric, stack};
use crate::poll::eventually;
use flexgate::sim::SimConfig;
use futures_util::StreamExt;

async fn read_all(r: reqwest::Response) -> String {
    String::from_utf8(r.bytes().await.unwrap().to_vec()).unwrap()
}

#[tokio::test]
async fn the_first_event_arrives_while_the_upstream_holds_the_rest() {
    let (sim, _s, _state, gw) = stack(SimConfig::zero_latency()).await;
    // `stall`: the simulator sends a few chunks, then holds the stream open.
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("sk")
        .header("x-sim-fault", "stall")
        .json(&chat_body("gpt-5", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut body = r.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .expect("first event while held")
        .unwrap()
        .unwrap();
    assert!(first.starts_with(b"data: {"), "{first:?}");
    assert_eq!(sim.open_streams(), 1, "the upstream stream is still open");
    drop(body);
    assert!(eventually(|| sim.open_streams() == 0).await, "closing the client cancels the upstream stream");
}

#[tokio::test]
async fn usage_is_requested_upstream_and_hidden_from_clients_that_did_not_ask() {
    let (sim, _s, state, gw) = stack(SimConfig::zero_latency()).await;
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("sk")
        .json(&chat_body("gpt-5", true))
        .send()
        .await
        .unwrap();
    let text = read_all(r).await;
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(!text.contains("\"choices\":[]"), "the usage-only chunk is removed: {text}");
    assert_eq!(sim.received()[0].include_usage, Some(true), "flexgate asked for usage");
    let m = state.metrics.render();
    assert!(count(&m, "flexgate_tokens_total", &[("kind", "input"), ("model", "gpt-5")]) > 0, "{m}");
    assert!(metric(&m, "flexgate_cost_usd_total", &[("model", "gpt-5")]) > 0.0);
    assert_eq!(count(&m, "flexgate_usage_missing_total", &[]), 0);

    let mut body = chat_body("gpt-5", true);
    body["stream_options"] = serde_json::json!({"include_usage": true});
    let r = client().post(gw.url("/v1/chat/completions")).bearer_auth("sk").json(&body).send().await.unwrap();
    let text = read_all(r).await;
    assert!(text.contains("\"choices\":[]"), "a client that asked keeps its usage chunk");
}

#[tokio::test]
async fn responses_streams_pass_through_with_their_tier() {
    let (_sim, _s, state, gw) = stack(SimConfig::zero_latency()).await;
    let body = serde_json::json!({"model": "gpt-5-mini", "input": "Write a haiku", "stream": true});
    let r = client().post(gw.url("/flex/v1/responses")).bearer_auth("sk").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-flexgate-tier"], "flex");
    let text = read_all(r).await;
    assert!(text.starts_with("event: response.created"), "{text}");
    assert!(text.contains("event: response.completed"));
    let m = state.metrics.render();
    assert!(metric(&m, "flexgate_cost_usd_total", &[("model", "gpt-5-mini"), ("tier", "flex")]) > 0.0, "{m}");
}

#[tokio::test]
async fn a_stream_cut_mid_way_ends_with_an_error_event() {
    let (_sim, _s, state, gw) = stack(SimConfig::zero_latency()).await;
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth("sk")
        .header("x-sim-fault", "cut")
        .json(&chat_body("gpt-5", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = read_all(r).await;
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.starts_with("data: {\"error\":"), "{text}");
    assert!(!text.contains("[DONE]"));
    let m = state.metrics.render();
    assert_eq!(count(&m, "flexgate_requests_total", &[("outcome", "upstream_error")]), 1, "{m}");
    assert_eq!(count(&m, "flexgate_usage_missing_total", &[("endpoint", "chat_completions")]), 1);
}

#[tokio::test]
async fn a_client_leaving_mid_stream_cancels_upstream_and_leaks_nothing() {
    let mut slow = SimConfig::zero_latency();
    slow.chunk_interval = Duration::from_millis(20);
    let (sim, _s, state, gw) = stack(slow).await;
    let mut body = chat_body("gpt-5", true);
    body["max_tokens"] = serde_json::json!(500);
    let r = client().post(gw.url("/v1/chat/completions")).bearer_auth("sk").json(&body).send().await.unwrap();
    let mut stream = r.bytes_stream();
    stream.next().await.unwrap().unwrap();
    assert_eq!(sim.open_streams(), 1);
    drop(stream);
    assert!(eventually(|| sim.open_streams() == 0).await, "upstream stream cancelled");
    assert!(
        eventually(|| {
            let m = state.metrics.render();
            count(&m, "flexgate_inflight_requests", &[]) == 0
                && count(&m, "flexgate_requests_total", &[("outcome", "cancelled")]) == 1
        })
        .await,
        "{}",
        state.metrics.render()
    );
}
