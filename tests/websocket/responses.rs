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

/// A budgeted client's session is charged each response as it completes, past the limit
/// if a turn crosses it (a session is never cut), and its next session is refused in
/// OpenAI's quota shape.
#[tokio::test]
async fn a_budgeted_clients_turns_are_charged_and_its_next_session_refused() {
    use crate::support::{GATEWAY_KEY, MANAGED, UPSTREAM_KEY};
    let upstream = responses_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    // One response costs $0.001125: the limit is passed during the second.
    let toml = format!(
        "{MANAGED}[store]\ndir = \"{}\"\n[budgets.browser]\nusd = \"0.002\"\nperiod = \"day\"\n",
        dir.path().display()
    );
    let env = [("OPENAI_API_KEY", UPSTREAM_KEY), ("GATEWAY_KEY", GATEWAY_KEY)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let (state, gw) = crate::common::spawn_gateway_with(upstream, &toml, &env).await;
    let bearer = format!("Bearer {GATEWAY_KEY}");
    let (mut socket, _) = connect(&gw, "/flex/v1/responses", &[("authorization", &bearer)]).await.unwrap();
    for _ in 0..3 {
        send(&mut socket, json!({"type": "response.create", "model": "gpt-5-mini", "input": "hi"})).await;
        until(&mut socket, "response.completed").await;
    }
    // The budget gauges are read from the accounts when `/metrics` is scraped.
    state.metrics.budgets.export(&state.budgets);
    let spent = metric(&metrics(&state), "flexgate_budget_spend_usd", &[("client", "browser")]);
    assert!((spent - 3.0 * 0.001_125).abs() < 1e-9, "every turn is charged, past the limit too: {spent}");

    let again = connect(&gw, "/flex/v1/responses", &[("authorization", &bearer)]).await;
    let Err(tokio_tungstenite::tungstenite::Error::Http(refused)) = again else {
        panic!("a client past its budget opened a session");
    };
    assert_eq!(refused.status(), 429);
    let body: serde_json::Value = serde_json::from_slice(refused.body().as_deref().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "flexgate_budget_exceeded", "{body}");
}
