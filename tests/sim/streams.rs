//! Streaming framing: chat and legacy completions (data-only SSE ending `[DONE]`),
//! Responses (typed events), usage parity with non-streaming, and pacing.

use std::time::Duration;

use flexgate::sim::SimConfig;
use http::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{chat_body, fast, post, send, sim, sse_data, sse_events};

fn parse_chunks(data: &[String]) -> Vec<Value> {
    data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect()
}

#[tokio::test]
async fn chat_stream_without_usage() {
    let (_sim, app) = fast();
    let mut body = chat_body("gpt-5", "Stream me");
    body["stream"] = json!(true);
    body["service_tier"] = json!("flex");
    let reply = send(&app, post("/v1/chat/completions", &body)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header("content-type").unwrap().starts_with("text/event-stream"));
    let data = sse_data(&reply.text());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks = parse_chunks(&data);
    // role chunk + 8 visible words (gpt-5 reasons on half of 16) + finish chunk
    assert_eq!(chunks.len(), 10);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["service_tier"], "flex");
        assert_eq!(chunk["id"], chunks[0]["id"]);
        assert!(chunk.get("usage").is_none(), "no usage key without include_usage");
        assert_eq!(chunk["choices"].as_array().unwrap().len(), 1);
    }
    assert_eq!(chunks[9]["choices"][0]["finish_reason"], "stop");
    assert!(chunks[..9].iter().all(|c| c["choices"][0]["finish_reason"].is_null()));
}

#[tokio::test]
async fn chat_stream_usage_matches_non_streaming() {
    let (_sim, app) = fast();
    let body = chat_body("gpt-4o", "Count my tokens please");
    let whole = send(&app, post("/v1/chat/completions", &body)).await.json();
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let reply = send(&app, post("/v1/chat/completions", &streamed)).await;
    let data = sse_data(&reply.text());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks = parse_chunks(&data);
    let (usage_chunk, rest) = chunks.split_last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"], whole["usage"]);
    assert!(rest.iter().all(|c| c["usage"].is_null() && c.get("usage").is_some()));
    let text: String = rest.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, whole["choices"][0]["message"]["content"]);
    assert_eq!(rest.len(), 1 + 16 + 1);
}

#[tokio::test]
async fn responses_stream_event_sequence() {
    let (_sim, app) = fast();
    let request = json!({"model": "gpt-5-nano", "input": "Tell me", "max_output_tokens": 8});
    let whole = send(&app, post("/v1/responses", &request)).await.json();
    let mut streamed = request.clone();
    streamed["stream"] = json!(true);
    streamed["service_tier"] = json!("priority");
    let reply = send(&app, post("/v1/responses", &streamed)).await;
    assert!(!reply.text().contains("[DONE]"));
    let events = sse_events(&reply.text());
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    let mut expected =
        vec!["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"];
    expected.extend(["response.output_text.delta"; 4]);
    expected.extend([
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",
    ]);
    assert_eq!(kinds, expected, "max_output_tokens reached: the stream ends incomplete");
    for (i, (_, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], i, "sequence numbers increase by one");
    }
    for (_, data) in &events[..2] {
        assert!(data["response"]["usage"].is_null());
        assert_eq!(data["response"]["status"], "in_progress");
        assert_eq!(data["response"]["service_tier"], "priority");
    }
    let deltas: String = events.iter().filter_map(|(_, d)| d["delta"].as_str()).collect();
    assert_eq!(events[8].1["text"], deltas.as_str());
    let completed = &events.last().unwrap().1["response"];
    assert_eq!(completed["status"], "incomplete");
    assert_eq!(completed["usage"], whole["usage"]);
    assert_eq!(completed["output"][0]["content"][0]["text"], deltas.as_str());
    assert_eq!(whole["output"][0]["content"][0]["text"], deltas.as_str());
}

#[tokio::test]
async fn legacy_completion_stream() {
    let (_sim, app) = fast();
    let request = json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Hi", "max_tokens": 3,
                         "stream": true, "stream_options": {"include_usage": true}});
    let data = sse_data(&send(&app, post("/v1/completions", &request)).await.text());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks = parse_chunks(&data);
    assert_eq!(chunks.len(), 3 + 1 + 1);
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[4]["choices"], json!([]));
    assert_eq!(chunks[4]["usage"]["completion_tokens"], 3);
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
}

#[tokio::test(start_paused = true)]
async fn latency_and_chunk_interval_use_tokio_time() {
    let config = SimConfig {
        latency_flex: Duration::from_millis(400),
        chunk_interval: Duration::from_millis(5),
        ..SimConfig::default()
    };
    let (_sim, app) = sim(config);
    let mut body = chat_body("gpt-4.1", "pace me");
    body["max_tokens"] = json!(10);
    body["stream"] = json!(true);
    let start = Instant::now();
    let reply = send(&app, post("/v1/chat/completions", &body)).await;
    // 50 ms standard latency, then 13 frames (role, 10 words, finish, DONE) 5 ms apart.
    assert_eq!(sse_data(&reply.text()).len(), 13);
    assert_close(start.elapsed(), Duration::from_millis(50 + 12 * 5));
    let mut flex = chat_body("o4-mini", "pace me");
    flex["service_tier"] = json!("flex");
    let start = Instant::now();
    assert_eq!(send(&app, post("/v1/chat/completions", &flex)).await.status, StatusCode::OK);
    assert_close(start.elapsed(), Duration::from_millis(400));
}

/// Virtual time advances in whole timer ticks, so allow a little rounding.
fn assert_close(elapsed: Duration, expected: Duration) {
    assert!(
        elapsed >= expected && elapsed <= expected + Duration::from_millis(15),
        "elapsed {elapsed:?}, expected {expected:?}"
    );
}
