//! The WebSocket client side of the tests: connect through the gateway, send events,
//! read events until one of a type arrives.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::HeaderValue;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::{self, Running};
use flexgate::sim::{Sim, SimConfig};
use flexgate::state::AppState;

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const UPSTREAM_KEY: &str = "sk-upstream-ws-0001";
pub const GATEWAY_KEY: &str = "fg-browser-key-0002";

/// Time any one expected event may take; a hang fails the test instead of blocking it.
const PATIENCE: Duration = Duration::from_secs(10);

/// The simulator and a gateway configured by `toml` in front of it.
pub async fn stack(toml: &str) -> (Sim, Running, AppState, Running) {
    let (sim, sim_run) = common::spawn_sim(SimConfig::zero_latency()).await;
    let env: HashMap<String, String> = [("OPENAI_API_KEY", UPSTREAM_KEY), ("GATEWAY_KEY", GATEWAY_KEY)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let (state, gw) = common::spawn_gateway_with(sim_run.addr, toml, &env).await;
    (sim, sim_run, state, gw)
}

pub const MANAGED: &str = "[auth]\nmode = \"managed\"\n[[auth.keys]]\nclient = \"browser\"\nenv = \"GATEWAY_KEY\"\n";

/// Open `path` on the gateway with these handshake headers.
pub async fn connect(
    gw: &Running,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(Socket, http::Response<Option<Vec<u8>>>), tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{}{path}", gw.addr).into_client_request().unwrap();
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
    }
    tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request)).await.expect("handshake timed out")
}

pub async fn send(socket: &mut Socket, event: Value) {
    socket.send(Message::text(event.to_string())).await.unwrap();
}

/// Read messages until an event of type `kind`; panics on anything that ends the session.
pub async fn until(socket: &mut Socket, kind: &str) -> Value {
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next()).await.expect("no event in time");
        match message {
            Some(Ok(Message::Text(text))) => {
                let event: Value = serde_json::from_str(text.as_str()).unwrap();
                if event["type"] == kind {
                    return event;
                }
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("waiting for {kind}, got {other:?}"),
        }
    }
}

/// Read until the session closes; the close code the client received (`None`: no close
/// frame, the connection just ended).
pub async fn close_code(socket: &mut Socket) -> Option<u16> {
    loop {
        match tokio::time::timeout(PATIENCE, socket.next()).await.expect("the session did not close") {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
}

/// The handshake headers the simulator received for its last `/v1/realtime` request.
pub fn upstream_handshake(sim: &Sim) -> HashMap<String, String> {
    let received = sim.received();
    let last = received.iter().rev().find(|r| r.path == "/v1/realtime").expect("the simulator saw the handshake");
    last.headers.iter().cloned().collect()
}

pub fn metrics(state: &AppState) -> String {
    state.metrics.render()
}
