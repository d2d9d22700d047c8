//! One upstream answer going wrong: silence before headers, a reset, a stall or a cut
//! mid-stream, malformed JSON, and an answer larger than any request limit.
//!
//! The tests that time a fault run in memory on paused time (`support::in_memory`), so
//! the durations they assert are the gateway's timeouts to the millisecond, not a window
//! wide enough for a busy machine.

use std::time::Duration;

use flexgate::sim::SimConfig;
use serde_json::{Value, json};
use sha2::Digest;
use tokio::time::Instant;

use crate::common::{chat_body, client, count};
use crate::poll::eventually;
use crate::support::{
    FAST, FAST_RETRY_ONLY, HANG, assert_ends_with_error_event, envelope, fast, h, in_memory, some, stack_with,
};

#[tokio::test(start_paused = true)]
async fn hang_before_headers_is_cut_at_the_attempt_timeout_and_retried() {
    let s = in_memory(HANG);
    let started = Instant::now();
    let r = s.post("/v1/chat/completions", &chat_body("gpt-5", false), &[("x-sim-fault", "hang,ok")]).await;
    let took = started.elapsed();
    assert_eq!((r.status().as_u16(), h(&r, "x-flexgate-attempts")), (200, "2".into()));
    // The 400 ms attempt timeout, then a backoff of at most 50 ms.
    assert!(took >= Duration::from_millis(400) && took <= Duration::from_millis(450), "{took:?}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(s.faults_seen(), some(&["hang", "ok"]));
    let m = s.metrics();
    assert_eq!(count(&m, "flexgate_upstream_attempts_total", &[("tier", "standard"), ("result", "timeout")]), 1);
    assert_eq!(count(&m, "flexgate_retries_total", &[("tier", "standard"), ("reason", "timeout")]), 1);
    assert_eq!(count(&m, "flexgate_requests_total", &[("outcome", "success")]), 1);
}

/// With the shipped 15-minute attempt timeout, a silent flex upstream still costs only
/// the flex share of the deadline: the attempt is abandoned at `deadline - reserve` and
/// the request is re-sent on standard (failoverbench saw a gateway hang 130 s here).
#[tokio::test(start_paused = true)]
async fn hang_on_flex_escalates_at_the_reserve_not_after_the_upstream_gives_up() {
    let s = in_memory(FAST_RETRY_ONLY);
    let started = Instant::now();
    let headers = [("x-sim-fault", "flex:hang"), ("x-flexgate-deadline", "2s")];
    let r = s.post("/flex/v1/chat/completions", &chat_body("gpt-5", false), &headers).await;
    let took = started.elapsed();
    assert_eq!(r.status(), 200);
    assert_eq!((h(&r, "x-flexgate-escalated"), h(&r, "x-flexgate-tier")), ("true".into(), "standard".into()));
    // A 2 s deadline keeps half of itself for standard: flex is given up at 1 s.
    assert_eq!(took, Duration::from_secs(1), "standard answers at once");
    assert_eq!(s.tiers_sent(), some(&["flex", "default"]));
    assert_eq!(s.faults_seen(), [Some("flex:hang".to_owned()), None]);
    let m = s.metrics();
    assert_eq!(count(&m, "flexgate_upstream_attempts_total", &[("tier", "flex"), ("result", "timeout")]), 1);
    assert_eq!(count(&m, "flexgate_escalations_total", &[("class", "background"), ("reason", "deadline")]), 1);
    assert_eq!(count(&m, "flexgate_requests_total", &[("tier", "standard"), ("outcome", "success")]), 1);
}

#[tokio::test(start_paused = true)]
async fn an_upstream_silent_on_every_tier_ends_at_the_deadline_with_504() {
    let s = in_memory(FAST_RETRY_ONLY);
    let started = Instant::now();
    let headers = [("x-sim-fault", "hang"), ("x-flexgate-deadline", "1s")];
    let r = s.post("/flex/v1/chat/completions", &chat_body("gpt-5", true), &headers).await;
    let took = started.elapsed();
    assert_eq!(h(&r, "x-should-retry"), "false");
    let (status, v) = envelope(r).await;
    assert_eq!((status, v["error"]["code"].as_str()), (504, Some("deadline_exceeded")));
    assert_eq!(took, Duration::from_secs(1), "{took:?}");
    assert_eq!(s.tiers_sent(), some(&["flex", "default"]), "flex until the reserve, then standard");
    let m = s.metrics();
    assert_eq!(count(&m, "flexgate_deadline_exceeded_total", &[("class", "background")]), 1);
    assert_eq!(count(&m, "flexgate_requests_total", &[("outcome", "deadline_exceeded")]), 1);
    assert_eq!(count(&m, "flexgate_inflight_requests", &[]), 0);
}

#[tokio::test]
async fn a_connection_reset_before_headers_is_retried() {
    let s = fast().await;
    for stream in [false, true] {
        s.sim.reset();
        let r = s.post("/v1/chat/completions", &chat_body("gpt-5", stream), &[("x-sim-fault", "reset,ok")]).await;
        assert_eq!((r.status().as_u16(), h(&r, "x-flexgate-attempts")), (200, "2".into()), "stream={stream}");
        let text = r.text().await.unwrap();
        assert!(if stream { text.ends_with("data: [DONE]\n\n") } else { text.contains("chat.completion") }, "{text}");
        assert_eq!(s.faults_seen(), some(&["reset", "ok"]));
    }
    let m = s.metrics();
    assert_eq!(count(&m, "flexgate_upstream_attempts_total", &[("result", "connect_error")]), 2);
    assert_eq!(count(&m, "flexgate_retries_total", &[("reason", "connect_error")]), 2);
    assert_eq!(count(&m, "flexgate_requests_total", &[("outcome", "success")]), 2);
}

#[tokio::test]
async fn an_upstream_that_always_resets_is_a_502_after_the_attempt_cap() {
    let s = fast().await;
    let r = s.post("/v1/chat/completions", &chat_body("gpt-5", false), &[("x-sim-fault", "reset")]).await;
    assert_eq!((h(&r, "x-flexgate-attempts"), h(&r, "x-should-retry")), ("3".into(), "false".into()));
    let (status, v) = envelope(r).await;
    assert_eq!((status, v["error"]["code"].as_str()), (502, Some("upstream_unreachable")));
    let message = v["error"]["message"].as_str().unwrap();
    assert!(!message.contains("127.0.0.1") && !message.contains("http://"), "no upstream URL leaks: {message}");
    assert_eq!(s.faults_seen(), some(&["reset", "reset", "reset"]));
    let m = s.metrics();
    assert_eq!(count(&m, "flexgate_upstream_attempts_total", &[("result", "connect_error")]), 3);
    assert_eq!(count(&m, "flexgate_requests_total", &[("outcome", "upstream_error")]), 1);
}

#[tokio::test(start_paused = true)]
async fn a_stream_stalled_mid_way_ends_with_an_error_event_at_the_idle_timeout() {
    let s = in_memory(FAST);
    let cases = [
        ("/v1/chat/completions", chat_body("gpt-5", true), false),
        ("/v1/responses", json!({"model": "gpt-5", "input": "Write a haiku", "stream": true}), true),
    ];
    for (path, body, responses_api) in &cases {
        let started = Instant::now();
        let r = s.post(path, body, &[("x-sim-fault", "stall")]).await;
        assert_eq!(r.status(), 200, "{path}: the first bytes were committed before the stall");
        let text = r.text().await.unwrap();
        let took = started.elapsed();
        // The 400 ms idle timeout from the last chunk; the simulator sends the prefix at once.
        assert_eq!(took, Duration::from_millis(400), "{path}");
        let event = assert_ends_with_error_event(&text, *responses_api);
        assert!(event.to_string().contains("went silent"), "{event}");
        assert!(text.matches("data: ").count() >= 2, "the prefix reached the client first: {text}");
    }
    assert_eq!(s.sim.received().len(), 2, "nothing is retried after the first byte");
    assert!(eventually(|| s.sim.open_streams() == 0).await, "the stalled upstream streams were closed");
    let m = s.metrics();
    assert_eq!(count(&m, "flexgate_requests_total", &[("outcome", "upstream_error")]), 2);
    assert_eq!(count(&m, "flexgate_requests_total", &[("outcome", "success")]), 0);
    assert_eq!(count(&m, "flexgate_usage_missing_total", &[]), 2);
    assert_eq!(count(&m, "flexgate_inflight_requests", &[]), 0);
}

/// A cut stream is never a success: not to the client (error event, no `[DONE]`), not
/// in the metrics. `tests/gateway/streaming.rs` covers chat; this adds Responses and the sim side.
#[tokio::test]
async fn a_cut_stream_is_an_error_for_the_client_and_the_metrics() {
    let s = fast().await;
    let body = json!({"model": "o3", "input": "Write a haiku", "stream": true});
    let r = s.post("/flex/v1/responses", &body, &[("x-sim-fault", "cut")]).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.starts_with("event: response.created"), "{text}");
    let event = assert_ends_with_error_event(&text, true);
    assert!(event.to_string().contains("broke mid-stream"), "{event}");
    assert_eq!(s.faults_seen(), some(&["cut"]), "no replay after output reached the client");
    assert!(eventually(|| s.sim.open_streams() == 0).await);
    let m = s.metrics();
    assert_eq!(count(&m, "flexgate_requests_total", &[("outcome", "upstream_error"), ("class", "background")]), 1);
    assert_eq!(count(&m, "flexgate_requests_total", &[("outcome", "success")]), 0);
    assert_eq!(count(&m, "flexgate_usage_missing_total", &[("endpoint", "responses")]), 1);
}

/// A non-streamed answer is read whole before anything is sent, so a cut there is
/// retried like a 503 and the client never sees half a JSON document.
#[tokio::test]
async fn a_cut_json_body_is_retried_and_never_reaches_the_client_half_done() {
    let s = fast().await;
    let r = s.post("/v1/chat/completions", &chat_body("gpt-5", false), &[("x-sim-fault", "cut,ok")]).await;
    assert_eq!((r.status().as_u16(), h(&r, "x-flexgate-attempts")), (200, "2".into()));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    s.sim.reset();
    let r = s.post("/v1/chat/completions", &chat_body("gpt-5", false), &[("x-sim-fault", "cut")]).await;
    let (status, v) = envelope(r).await;
    assert_eq!((status, v["error"]["code"].as_str()), (502, Some("upstream_protocol_error")));
    assert_eq!(s.faults_seen(), some(&["cut", "cut", "cut"]));
    let m = s.metrics();
    assert_eq!(count(&m, "flexgate_upstream_attempts_total", &[("result", "server_error")]), 4);
    assert_eq!(count(&m, "flexgate_requests_total", &[("outcome", "upstream_error")]), 1);
}

#[tokio::test]
async fn malformed_json_is_retried_escalated_or_reported_never_forwarded() {
    let s = fast().await;
    // Streamed or not, a 200 that is not JSON is a failed attempt.
    let r = s.post("/v1/chat/completions", &chat_body("gpt-5", true), &[("x-sim-fault", "malformed,ok")]).await;
    assert_eq!((r.status().as_u16(), h(&r, "x-flexgate-attempts")), (200, "2".into()));
    assert!(r.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    // On flex it counts against flex and the request escalates.
    s.sim.reset();
    let r = s.post("/flex/v1/chat/completions", &chat_body("gpt-5", false), &[("x-sim-fault", "flex:malformed")]).await;
    assert_eq!((r.status().as_u16(), h(&r, "x-flexgate-escalated")), (200, "true".into()));
    assert_eq!(s.tiers_sent().last().unwrap().as_deref(), Some("default"));
    // Persistent: flexgate's own 502, not the upstream's garbage.
    s.sim.reset();
    let r = s.post("/v1/chat/completions", &chat_body("gpt-5", false), &[("x-sim-fault", "malformed")]).await;
    let (status, v) = envelope(r).await;
    assert_eq!((status, v["error"]["code"].as_str()), (502, Some("upstream_protocol_error")));
    assert!(v["error"]["message"].as_str().unwrap().contains("malformed JSON"));
    assert_eq!(s.faults_seen(), some(&["malformed", "malformed", "malformed"]));
    let m = s.metrics();
    assert_eq!(count(&m, "flexgate_requests_total", &[("outcome", "success")]), 2);
    assert_eq!(count(&m, "flexgate_requests_total", &[("outcome", "upstream_error")]), 1);
}

/// An upstream answer far larger than `server.max_body` is streamed through intact: the
/// request limit does not apply to answers, and unmetered bodies are never buffered.
#[tokio::test]
async fn an_oversized_upstream_body_streams_through_intact() {
    let s = stack_with(SimConfig::zero_latency(), "[server]\nmax_body = \"1KiB\"\n").await;
    let payload: Vec<u8> = (0..8_u32 << 20).map(|i| i.wrapping_mul(2_654_435_761).to_be_bytes()[0]).collect();
    // Uploaded straight to the simulator: the gateway would rightly refuse 8 MiB.
    let form = reqwest::multipart::Form::new()
        .text("purpose", "batch")
        .part("file", reqwest::multipart::Part::bytes(payload.clone()).file_name("big.jsonl"));
    let sim_url = format!("{}/files", s.state.config.upstream.base_url.as_str().trim_end_matches('/'));
    let r = client().post(sim_url).bearer_auth("sk-test").multipart(form).send().await.unwrap();
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let r = client().get(s.gw.url(&format!("/v1/files/{id}/content"))).bearer_auth("sk-test").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let got = r.bytes().await.unwrap();
    assert_eq!(got.len(), payload.len());
    assert_eq!(sha2::Sha256::digest(&got), sha2::Sha256::digest(&payload), "byte for byte");
    let received = s.sim.received();
    assert_eq!(received.len(), 2, "the upload and one download");
    assert_eq!(received[1].path, format!("/v1/files/{id}/content"));
    let m = s.metrics();
    assert_eq!(count(&m, "flexgate_requests_total", &[("outcome", "success")]), 1);
    assert_eq!(count(&m, "flexgate_inflight_requests", &[]), 0);
}
