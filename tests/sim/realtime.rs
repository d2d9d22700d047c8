//! The Realtime WebSocket endpoint over a real socket: the session events, a text
//! response with usage in `response.done`, auth by subprotocol, the refused beta shape
//! and refusals before the upgrade.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error, Message};

use crate::socket::start;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(base: &str, model: &str, headers: &[(&str, &str)]) -> Result<Socket, Error> {
    let url = format!("{}/v1/realtime?model={model}", base.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.map(|(socket, _)| socket)
}

async fn next_event(socket: &mut Socket) -> Value {
    loop {
        match socket.next().await.unwrap().unwrap() {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Close(frame) => return json!({"type": "closed", "code": frame.map(|f| u16::from(f.code))}),
            _ => {}
        }
    }
}

async fn send(socket: &mut Socket, event: Value) {
    socket.send(Message::Text(event.to_string().into())).await.unwrap();
}

#[tokio::test]
async fn a_session_answers_text_with_usage() {
    let running = start().await;
    let mut socket = connect(&running.base, "gpt-realtime", &[("authorization", "Bearer sk-test")]).await.unwrap();
    let created = next_event(&mut socket).await;
    assert_eq!(created["type"], "session.created");
    assert_eq!(created["session"]["model"], "gpt-realtime");
    assert!(created["event_id"].as_str().unwrap().starts_with("event_"));

    send(&mut socket, json!({"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief"}}))
        .await;
    let updated = next_event(&mut socket).await;
    assert_eq!(
        (updated["type"].as_str(), updated["session"]["instructions"].as_str()),
        (Some("session.updated"), Some("Be brief"))
    );

    let item = json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello there"}]});
    send(&mut socket, json!({"type": "conversation.item.create", "item": item})).await;
    assert_eq!(next_event(&mut socket).await["type"], "conversation.item.added");
    assert_eq!(next_event(&mut socket).await["type"], "conversation.item.done");

    send(&mut socket, json!({"type": "response.create", "response": {"max_output_tokens": 5}})).await;
    let mut kinds = Vec::new();
    let mut deltas = String::new();
    let done = loop {
        let event = next_event(&mut socket).await;
        kinds.push(event["type"].as_str().unwrap().to_owned());
        if let Some(delta) = event["delta"].as_str() {
            deltas.push_str(delta);
        }
        if event["type"] == "response.done" {
            break event;
        }
    };
    assert_eq!(kinds[0], "response.created");
    assert_eq!(kinds.iter().filter(|k| *k == "response.output_text.delta").count(), 5);
    let response = &done["response"];
    assert_eq!(response["status"], "completed");
    assert_eq!(response["output"][0]["content"][0]["text"], deltas.as_str());
    // "Hello there" (11 chars → 6) + "Be brief" (8 chars → 5) input tokens; 5 output.
    let usage = &response["usage"];
    assert_eq!((usage["input_tokens"].as_u64(), usage["output_tokens"].as_u64()), (Some(11), Some(5)));
    assert_eq!(usage["total_tokens"], 16);
    assert_eq!(usage["input_token_details"]["cached_tokens"], 0);

    send(&mut socket, json!({"type": "no.such.event", "event_id": "evt_1"})).await;
    let error = next_event(&mut socket).await;
    assert_eq!((error["type"].as_str(), error["error"]["event_id"].as_str()), (Some("error"), Some("evt_1")));
    running.stop.send(()).unwrap();
}

#[tokio::test]
async fn subprotocol_auth_beta_refusal_and_bad_requests() {
    let running = start().await;
    let protocols = ("sec-websocket-protocol", "realtime, openai-insecure-api-key.sk-browser");
    let mut socket = connect(&running.base, "gpt-realtime-mini", &[protocols]).await.unwrap();
    assert_eq!(next_event(&mut socket).await["type"], "session.created");

    let beta = [("authorization", "Bearer sk-test"), ("openai-beta", "realtime=v1")];
    let mut socket = connect(&running.base, "gpt-realtime", &beta).await.unwrap();
    assert_eq!(next_event(&mut socket).await["error"]["code"], "beta_api_shape_disabled");
    assert_eq!(next_event(&mut socket).await["code"], u16::from(CloseCode::Library(4000)));

    let refused = |result: Result<Socket, Error>| match result {
        Err(Error::Http(response)) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {:?}", other.map(|_| ())),
    };
    assert_eq!(refused(connect(&running.base, "gpt-realtime", &[]).await), 401);
    assert_eq!(refused(connect(&running.base, "gpt-4o", &[("authorization", "Bearer sk-test")]).await), 404);
    running.stop.send(()).unwrap();
}
