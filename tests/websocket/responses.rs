//! The Responses API's WebSocket mode (`GET /v1/responses` upgraded): usage comes in
//! `response.completed`, with the model and the tier that served it, and is priced.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::routing::get;
use serde_json::json;

use crate::common::{count, metric};
use crate::support::{connect, metrics, send, until};

/// An upstream that speaks only the Responses WebSocket mode: each `response.create` is
/// answered with `response.created` and `response.completed` (model, tier, usage).
async fn responses_upstream() -> SocketAddr {
    async fn session(mut socket: WebSocket) {
        while let Some(Ok(Message::Text(text))) = socket.recv().await {
            let event: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
            let model = event["model"].as_str().unwrap_or("gpt-5-mini").to_owned();
            let response = json!({"id": "resp_1", "model": model, "service_tier": "flex", "status": "completed",
                "usage": {"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 0},
                          "output_tokens": 1000, "output_tokens_details": {"reasoning_tokens": 400}}});
            for kind in ["response.created", "response.completed"] {
                let event = json!({"type": kind, "sequence_number": 1, "response": response});
                if socket.send(Message::Text(event.to_string().into())).await.is_err() {
                    return;
                }
            }
        }
    }
    let app = Router::new().route("/v1/responses", get(|ws: WebSocketUpgrade| async { ws.on_upgrade(session) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test]
async fn responses_websocket_mode_is_metered_and_priced_per_response() {
    let upstream = responses_upstream().await;
    let (state, gw) = crate::common::spawn_gateway(upstream).await;
    let (mut socket, _) = connect(&gw, "/flex/v1/responses", &[("authorization", "Bearer sk-client")]).await.unwrap();
    for _ in 0..2 {
        send(&mut socket, json!({"type": "response.create", "model": "gpt-5-mini", "input": "hi"})).await;
        let done = until(&mut socket, "response.completed").await;
        assert_eq!(done["response"]["usage"]["output_tokens"], 1000);
    }
    let text = metrics(&state);
    let labels = [("endpoint", "realtime"), ("class", "background"), ("model", "gpt-5-mini"), ("tier", "flex")];
    assert_eq!(count(&text, "flexgate_requests_total", &labels), 2, "{text}");
    let tokens = [("model", "gpt-5-mini"), ("tier", "flex"), ("kind", "reasoning")];
    assert_eq!(count(&text, "flexgate_tokens_total", &tokens), 800);
    // Two responses at flex prices: 1,000 input at $0.125/M and 1,000 output at $1.00/M.
    let cost = metric(&text, "flexgate_cost_usd_total", &[("model", "gpt-5-mini"), ("tier", "flex")]);
    assert!((cost - 2.0 * 0.001_125).abs() < 1e-9, "{cost}");
}
