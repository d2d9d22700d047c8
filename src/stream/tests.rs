//! The streamed body: forwarding, cutting the usage-only chunk at any split, and the
//! error event on a broken stream.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use tokio::time::Instant;

use super::{StreamOptions, body};
use crate::config::Config;
use crate::endpoint::Endpoint;
use crate::ledger::{Ledger, RequestFacts};
use crate::state::AppState;
use crate::upstream::attempt::{ByteStream, Peeked};

const CHAT: &str = concat!(
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-5\",\"service_tier\":\"flex\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-5\",\"service_tier\":\"flex\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-5\",\"service_tier\":\"flex\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":4,\"total_tokens\":14}}\n\n",
    "data: [DONE]\n\n",
);

fn state() -> AppState {
    AppState::new(Config::for_upstream("http://127.0.0.1:9/v1").unwrap()).unwrap()
}

fn ledger(state: &AppState) -> Ledger {
    let facts = RequestFacts {
        method: http::Method::POST,
        lane: None,
        request_id: http::HeaderValue::from_static("t"),
        endpoint: Endpoint::ChatCompletions,
        class: state.config.class_by_name("interactive").unwrap(),
        requested_model: Some("gpt-5".into()),
        metered: true,
    };
    let mut l = Ledger::open(state.clone(), facts, Instant::now());
    l.record_answer(http::StatusCode::OK, &http::HeaderMap::new());
    l
}

fn chunks(parts: Vec<Bytes>) -> ByteStream {
    Box::pin(futures_util::stream::iter(parts.into_iter().map(Ok)))
}

async fn collect(parts: Vec<Bytes>, strip: bool) -> (String, AppState) {
    let state = state();
    let options = StreamOptions {
        sse: Some(Endpoint::ChatCompletions),
        strip_usage_chunk: strip,
        idle_timeout: Duration::from_secs(5),
    };
    let b = body(None, chunks(parts), options, ledger(&state));
    let bytes = b.collect().await.unwrap().to_bytes();
    (String::from_utf8(bytes.to_vec()).unwrap(), state)
}

fn split_at(text: &str, cuts: &[usize]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut at = 0;
    for &c in cuts {
        out.push(Bytes::copy_from_slice(&text.as_bytes()[at..c]));
        at = c;
    }
    out.push(Bytes::copy_from_slice(&text.as_bytes()[at..]));
    out
}

#[tokio::test]
async fn forwards_unchanged_without_stripping() {
    let (out, state) = collect(vec![Bytes::from_static(CHAT.as_bytes())], false).await;
    assert_eq!(out, CHAT);
    let text = state.metrics.render();
    assert!(text.contains("flexgate_tokens_total{kind=\"input\",model=\"gpt-5\",tier=\"flex\"} 10"), "{text}");
}

#[tokio::test]
async fn strips_the_usage_chunk_at_every_split() {
    let usage_start = CHAT.find("\"choices\":[]").unwrap();
    let event_start = CHAT[..usage_start].rfind("data: ").unwrap();
    let event_end = event_start + CHAT[event_start..].find("\n\n").unwrap() + 2;
    let expected = format!("{}{}", &CHAT[..event_start], &CHAT[event_end..]);
    for cut in 1..CHAT.len() {
        let (out, state) = collect(split_at(CHAT, &[cut]), true).await;
        assert_eq!(out, expected, "split at {cut}");
        let cost = state.metrics.value("flexgate_cost_usd_total", &[]);
        assert!(cost > 0.0, "usage still counted at split {cut}");
    }
    let singles: Vec<usize> = (1..CHAT.len()).collect();
    let (out, _) = collect(split_at(CHAT, &singles), true).await;
    assert_eq!(out, expected);
}

/// As the proxy hands it over: the first chunk observed by the attempt's peek.
async fn collect_peeked(mut parts: Vec<Bytes>, strip: bool) -> (String, AppState) {
    let state = state();
    let options = StreamOptions {
        sse: Some(Endpoint::ChatCompletions),
        strip_usage_chunk: strip,
        idle_timeout: Duration::from_secs(5),
    };
    let first = Peeked::observe(Endpoint::ChatCompletions, parts.remove(0));
    let b = body(Some(first), chunks(parts), options, ledger(&state));
    let bytes = b.collect().await.unwrap().to_bytes();
    (String::from_utf8(bytes.to_vec()).unwrap(), state)
}

#[tokio::test]
async fn a_peeked_first_chunk_is_continued_not_parsed_again() {
    let usage_start = CHAT.find("\"choices\":[]").unwrap();
    let event_start = CHAT[..usage_start].rfind("data: ").unwrap();
    let event_end = event_start + CHAT[event_start..].find("\n\n").unwrap() + 2;
    let expected = format!("{}{}", &CHAT[..event_start], &CHAT[event_end..]);
    // Every split, including the whole answer arriving in the first chunk.
    for cut in 1..=CHAT.len() {
        let (out, state) = collect_peeked(split_at(CHAT, &[cut]), true).await;
        assert_eq!(out, expected, "split at {cut}");
        let text = state.metrics.render();
        // Counted once: a chunk parsed twice would double nothing (usage merges by max),
        // but a lost parser state would miss the terminal event and end in an error.
        assert_eq!(
            state.metrics.count("flexgate_requests_total", &[("outcome", "success")]),
            1,
            "split at {cut}: {text}"
        );
        assert!(text.contains("flexgate_tokens_total{kind=\"input\",model=\"gpt-5\",tier=\"flex\"} 10"), "{text}");
        let (out, _) = collect_peeked(split_at(CHAT, &[cut]), false).await;
        assert_eq!(out, CHAT, "split at {cut}, not stripped");
    }
}

#[tokio::test]
async fn a_cut_stream_ends_with_an_error_event() {
    let cut = CHAT.find("data: [DONE]").unwrap() - 30;
    let (out, state) = collect(vec![Bytes::copy_from_slice(&CHAT.as_bytes()[..cut])], false).await;
    assert!(out.ends_with("\n\n"), "{out}");
    let last = out.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.starts_with("data: {\"error\":"), "{last}");
    let text = state.metrics.render();
    assert_eq!(state.metrics.count("flexgate_requests_total", &[("outcome", "upstream_error")]), 1, "{text}");
    assert!(text.contains("flexgate_usage_missing_total{endpoint=\"chat_completions\"} 1"), "{text}");
}

#[tokio::test]
async fn responses_errors_use_the_error_event() {
    let text = super::error_event(Some(Endpoint::Responses), "gone");
    assert!(text.starts_with("event: error\ndata: {"));
    let data: serde_json::Value =
        serde_json::from_str(text.trim_end().strip_prefix("event: error\ndata: ").unwrap()).unwrap();
    assert_eq!(data["type"], "error");
    assert!(data["error"]["message"].as_str().unwrap().contains("gone"));
}

#[tokio::test(start_paused = true)]
async fn a_silent_upstream_hits_the_idle_timeout() {
    let state = state();
    let first = Bytes::from_static(b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n");
    let rest: ByteStream = Box::pin(futures_util::stream::pending());
    let options = StreamOptions {
        sse: Some(Endpoint::ChatCompletions),
        strip_usage_chunk: false,
        idle_timeout: Duration::from_secs(30),
    };
    let b = body(Some(Peeked::observe(Endpoint::ChatCompletions, first)), rest, options, ledger(&state));
    let started = Instant::now();
    let bytes = b.collect().await.unwrap().to_bytes();
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    assert!(String::from_utf8_lossy(&bytes).contains("idle_timeout"));
}

#[tokio::test]
async fn a_dropped_body_settles_as_cancelled() {
    let state = state();
    let rest: ByteStream = Box::pin(futures_util::stream::pending());
    let options = StreamOptions {
        sse: Some(Endpoint::ChatCompletions),
        strip_usage_chunk: false,
        idle_timeout: Duration::from_secs(30),
    };
    let b = body(None, rest, options, ledger(&state));
    drop(b);
    let m = &state.metrics;
    assert_eq!(m.count("flexgate_requests_total", &[("outcome", "cancelled")]), 1, "{}", m.render());
    assert_eq!(m.count("flexgate_inflight_requests", &[("class", "interactive")]), 0, "{}", m.render());
}

#[tokio::test]
async fn a_client_hanging_up_after_the_terminal_event_is_a_success() {
    let state = state();
    // The upstream has sent everything but not yet closed the connection.
    let rest: ByteStream = Box::pin(
        futures_util::stream::iter([Ok(Bytes::from_static(CHAT.as_bytes()))]).chain(futures_util::stream::pending()),
    );
    let options = StreamOptions {
        sse: Some(Endpoint::ChatCompletions),
        strip_usage_chunk: false,
        idle_timeout: Duration::from_secs(30),
    };
    let mut b = body(None, rest, options, ledger(&state)).into_data_stream();
    let first = b.next().await.unwrap().unwrap();
    assert_eq!(first, CHAT.as_bytes());
    drop(b);
    let m = &state.metrics;
    assert_eq!(m.count("flexgate_requests_total", &[("outcome", "success")]), 1, "{}", m.render());
    assert_eq!(m.count("flexgate_requests_total", &[("outcome", "cancelled")]), 0, "{}", m.render());
    assert!(m.value("flexgate_cost_usd_total", &[]) > 0.0, "{}", m.render());
    assert_eq!(m.count("flexgate_time_to_first_byte_seconds", &[]), 1, "{}", m.render());
}

#[tokio::test(start_paused = true)]
async fn the_idle_timeout_counts_from_the_latest_chunk() {
    // Three chunks 20 s apart under a 30 s idle timeout: each chunk restarts the count,
    // so the stream completes after 60 s although it outlasts the timeout twice over.
    let state = state();
    let gaps =
        futures_util::stream::iter(split_at(CHAT, &[CHAT.len() / 3, 2 * CHAT.len() / 3])).then(|part| async move {
            tokio::time::sleep(Duration::from_secs(20)).await;
            Ok(part)
        });
    let options = StreamOptions {
        sse: Some(Endpoint::ChatCompletions),
        strip_usage_chunk: false,
        idle_timeout: Duration::from_secs(30),
    };
    let started = Instant::now();
    let b = body(None, Box::pin(gaps), options, ledger(&state));
    let bytes = b.collect().await.unwrap().to_bytes();
    assert_eq!(started.elapsed(), Duration::from_secs(60));
    assert_eq!(bytes, CHAT.as_bytes());
    assert_eq!(state.metrics.count("flexgate_requests_total", &[("outcome", "success")]), 1);
}
