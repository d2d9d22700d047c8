//! Sessions through the gateway: both auth modes, frames of megabytes each way, a refused
//! upgrade passed through, and usage counted from `response.done`.

use serde_json::json;

use crate::common::count;
use crate::support::{
    GATEWAY_KEY, MANAGED, UPSTREAM_KEY, close_code, connect, metrics, send, stack, until, upstream_handshake,
};

/// One turn: `response.create` → `response.done`; its usage.
async fn turn(socket: &mut crate::support::Socket) -> serde_json::Value {
    send(socket, json!({"type": "response.create"})).await;
    until(socket, "response.created").await;
    let delta = until(socket, "response.output_text.delta").await;
    assert!(delta["delta"].as_str().is_some_and(|d| !d.is_empty()), "{delta}");
    until(socket, "response.done").await["response"]["usage"].clone()
}

#[tokio::test]
async fn passthrough_forwards_the_clients_key_and_counts_usage_per_turn() {
    let (sim, _s, state, gw) = stack("").await;
    let (mut socket, answer) = connect(
        &gw,
        "/v1/realtime?model=gpt-realtime",
        &[
            ("authorization", "Bearer sk-client-own"),
            ("sec-websocket-protocol", "realtime"),
            ("sec-websocket-extensions", "permessage-deflate; client_max_window_bits"),
            ("x-flexgate-class", "background"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(answer.headers()["sec-websocket-protocol"], "realtime");
    assert_eq!(until(&mut socket, "session.created").await["session"]["model"], "gpt-realtime");
    send(&mut socket, json!({"type": "session.update", "session": {"instructions": "be brief"}})).await;
    assert_eq!(until(&mut socket, "session.updated").await["session"]["instructions"], "be brief");
    let first = turn(&mut socket).await;
    let second = turn(&mut socket).await;
    assert!(first["input_tokens"].as_u64().unwrap() > 0, "{first}");
    assert_eq!(first["output_tokens"], 16, "the simulator's default answer length");

    let sent = upstream_handshake(&sim);
    assert_eq!(sent["authorization"], "Bearer sk-client-own");
    assert_eq!(sent["sec-websocket-protocol"], "realtime");
    // Not offered upstream, so frames stay uncompressed and readable.
    assert!(!sent.contains_key("sec-websocket-extensions"), "{sent:?}");
    assert!(!sent.contains_key("x-flexgate-class"));

    // Counted before the client saw `response.done`: no waiting needed.
    let text = metrics(&state);
    let realtime = [("endpoint", "realtime"), ("class", "background"), ("outcome", "success")];
    assert_eq!(count(&text, "flexgate_requests_total", &realtime), 2, "{text}");
    let input = first["input_tokens"].as_u64().unwrap() + second["input_tokens"].as_u64().unwrap();
    let output = first["output_tokens"].as_u64().unwrap() + second["output_tokens"].as_u64().unwrap();
    // gpt-realtime is not in the price table: the model label is `other`, cost unknown.
    assert_eq!(count(&text, "flexgate_tokens_total", &[("model", "other"), ("kind", "input")]), input);
    assert_eq!(count(&text, "flexgate_tokens_total", &[("model", "other"), ("kind", "output")]), output);
    assert_eq!(count(&text, "flexgate_cost_unknown_total", &[("model", "other")]), 2);
    assert_eq!(count(&text, "flexgate_websocket_sessions", &[]), 1);

    socket.close(None).await.unwrap();
    assert_eq!(close_code(&mut socket).await, None);
    tokio::time::timeout(std::time::Duration::from_secs(10), state.websockets.closed()).await.unwrap();
    assert_eq!(count(&metrics(&state), "flexgate_websocket_sessions", &[]), 0);
}

#[tokio::test]
async fn managed_mode_takes_the_gateway_key_from_the_header_and_sends_the_upstream_key() {
    let (sim, _s, _state, gw) = stack(MANAGED).await;
    let bearer = format!("Bearer {GATEWAY_KEY}");
    let (mut socket, _) =
        connect(&gw, "/flex/v1/realtime?model=gpt-realtime", &[("authorization", &bearer)]).await.unwrap();
    until(&mut socket, "session.created").await;
    assert_eq!(upstream_handshake(&sim)["authorization"], format!("Bearer {UPSTREAM_KEY}"));
}

#[tokio::test]
async fn managed_mode_takes_the_gateway_key_from_the_subprotocol() {
    let (sim, _s, _state, gw) = stack(MANAGED).await;
    let protocols = format!("realtime, openai-insecure-api-key.{GATEWAY_KEY}");
    let (mut socket, answer) =
        connect(&gw, "/v1/realtime?model=gpt-realtime", &[("sec-websocket-protocol", &protocols)]).await.unwrap();
    // The client gets back a protocol it offered.
    assert_eq!(answer.headers()["sec-websocket-protocol"], "realtime");
    until(&mut socket, "session.created").await;
    let sent = upstream_handshake(&sim);
    assert_eq!(sent["authorization"], format!("Bearer {UPSTREAM_KEY}"));
    // The gateway key never reaches the upstream.
    assert_eq!(sent["sec-websocket-protocol"], "realtime");

    // A wrong key is refused by flexgate itself, in OpenAI's error shape.
    let wrong = connect(&gw, "/v1/realtime", &[("sec-websocket-protocol", "realtime, openai-insecure-api-key.nope")]);
    let Err(tokio_tungstenite::tungstenite::Error::Http(refused)) = wrong.await else {
        panic!("a wrong gateway key was accepted");
    };
    assert_eq!(refused.status(), 401);
    let body: serde_json::Value = serde_json::from_slice(refused.body().as_deref().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "invalid_api_key", "{body}");
}

#[tokio::test]
async fn an_upstream_refusal_reaches_the_client_as_it_is() {
    let (_sim, _s, state, gw) = stack("").await;
    // No key at all: the simulator answers 401 instead of upgrading.
    let Err(tokio_tungstenite::tungstenite::Error::Http(refused)) = connect(&gw, "/v1/realtime", &[]).await else {
        panic!("the upgrade went through without a key");
    };
    assert_eq!(refused.status(), 401);
    assert!(refused.headers().contains_key("x-request-id"));
    let body: serde_json::Value = serde_json::from_slice(refused.body().as_deref().unwrap()).unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("API key"), "{body}");
    let text = metrics(&state);
    let labels = [("endpoint", "realtime"), ("outcome", "client_error")];
    assert_eq!(count(&text, "flexgate_requests_total", &labels), 1, "{text}");
}

#[tokio::test]
async fn frames_of_two_mebibytes_cross_both_ways() {
    const SIZE: usize = 2 * 1024 * 1024 + 17;
    let (_sim, _s, state, gw) = stack("").await;
    let (mut socket, _) =
        connect(&gw, "/v1/realtime?model=gpt-realtime", &[("authorization", "Bearer sk-client")]).await.unwrap();
    until(&mut socket, "session.created").await;
    // Up: one 2 MiB append; the simulator prices audio by the characters it received.
    send(&mut socket, json!({"type": "input_audio_buffer.append", "audio": "B".repeat(SIZE)})).await;
    // Down: the simulator sends a 2 MiB audio delta before its text.
    send(&mut socket, json!({"type": "response.create", "response": {"metadata": {"sim_audio_bytes": SIZE}}})).await;
    let audio = until(&mut socket, "response.output_audio.delta").await;
    assert_eq!(audio["delta"].as_str().unwrap().len(), SIZE);
    let done = until(&mut socket, "response.done").await;
    let usage = &done["response"]["usage"];
    let audio_tokens = (SIZE as u64).div_ceil(1000);
    assert_eq!(usage["input_token_details"]["audio_tokens"], audio_tokens);
    assert_eq!(usage["output_token_details"]["audio_tokens"], audio_tokens);
    // The large delta was relayed unread; the turn was still counted.
    let text = metrics(&state);
    let text_input = usage["input_token_details"]["text_tokens"].as_u64().unwrap();
    assert_eq!(count(&text, "flexgate_tokens_total", &[("kind", "input")]), text_input + audio_tokens);
}
